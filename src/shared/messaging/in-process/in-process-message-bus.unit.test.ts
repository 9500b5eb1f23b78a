import { messageBusContract } from '../message-bus.contract.js';
import { inProcessMessageBus } from './in-process-message-bus.js';

messageBusContract('in-process', async () => {
  const bus = inProcessMessageBus();
  return { bus, prefix: 'test', close: () => bus.close() };
});

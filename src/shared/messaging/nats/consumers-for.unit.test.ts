import { describe, expect, it } from 'vitest';
import { subjectsOfSubscriber } from '../event-messages.js';
import { consumersFor } from './nats-message-bus.js';

const roles: Record<string, string> = {
  ingestion: 'ingestion',
  validation: 'validation',
  processing: 'processing',
  applications: 'ingestion',
};
const roleOf = (context: string) => roles[context];

describe('consumers of a subscriber', () => {
  it('asks for each type from the role running the context that publishes it', () => {
    const itemStatus = { handles: ['DataValidated', 'DataInvalid', 'DataProcessed', 'Unheard'] };
    expect(subjectsOfSubscriber(itemStatus, roleOf, 'acme')).toEqual([
      'acme.validation.DataValidated',
      'acme.validation.DataInvalid',
      'acme.processing.DataProcessed',
      'acme.*.Unheard',
    ]);
    // A replica names the context it copies: that wins over the type's publisher.
    expect(subjectsOfSubscriber({ handles: ['ApplicationCreated'], from: 'applications' }, roleOf)).toEqual([
      'intake.ingestion.ApplicationCreated',
    ]);
  });

  it('gives a server of 2.10 or later one consumer with every subject as a filter', () => {
    const subjects = ['intake.validation.DataValidated', 'intake.processing.DataProcessed'];
    expect(consumersFor('ingestion-item-status', subjects, true)).toEqual([{ name: 'ingestion-item-status', subjects, filters: subjects }]);
  });

  it('gives an earlier server one consumer per publishing role, so no other role’s messages reach it', () => {
    const subjects = ['intake.validation.DataValidated', 'intake.validation.DataInvalid', 'intake.processing.DataProcessed'];
    expect(consumersFor('ingestion-item-status', subjects, false)).toEqual([
      {
        name: 'ingestion-item-status--validation',
        subjects: ['intake.validation.DataValidated', 'intake.validation.DataInvalid'],
        filters: ['intake.validation.>'],
      },
      {
        name: 'ingestion-item-status--processing',
        subjects: ['intake.processing.DataProcessed'],
        filters: ['intake.processing.DataProcessed'],
      },
    ]);
  });

  it('keeps one consumer under one filter when the subjects are of one role or do not name it', () => {
    expect(consumersFor('v', ['intake.validation.A', 'intake.validation.B'], false)).toEqual([
      { name: 'v', subjects: ['intake.validation.A', 'intake.validation.B'], filters: ['intake.validation.>'] },
    ]);
    expect(consumersFor('w', ['intake.*.A', 'intake.routing.B'], false)).toEqual([
      { name: 'w', subjects: ['intake.*.A', 'intake.routing.B'], filters: ['intake.>'] },
    ]);
  });
});

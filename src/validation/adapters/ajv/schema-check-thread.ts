import { parentPort } from 'node:worker_threads';
import { messageOf, ValidationError } from '../../../shared/errors.js';
import type { SchemaDocument } from '../../domain/schema-registry.js';
import { ajvSchemaCompiler } from './ajv-schema-compiler.js';
import type { CheckReply } from './threaded-schema-check.js';

/** Compiles schemas being saved, one at a time, so the thread that serves HTTP never does. */
const compiler = ajvSchemaCompiler();

parentPort?.on('message', ({ id, schema }: { id: number; schema: SchemaDocument }) => {
  let reply: CheckReply;
  try {
    compiler.compile(schema);
    reply = { id, outcome: 'valid' };
  } catch (error) {
    reply =
      error instanceof ValidationError
        ? { id, outcome: 'invalid', code: error.code, message: error.message, violations: error.violations }
        : { id, outcome: 'failed', message: messageOf(error) };
  }
  parentPort?.postMessage(reply);
});

// ajv compiles its meta-schemas at the first compile: done now, so that a deadline measures the schema's own.
compiler.compile({ type: 'object' });
// Ready: what the thread is sent from now on is a compile, which its deadline measures.
parentPort?.postMessage('ready');

import type { ContextModule, ContextTables, ModuleDeps } from '../shared/context-module.js';
import { getSchema, registerSchema, removeSchema } from './application/manage-schemas.js';
import { validationSubscriber } from './application/validation-subscriber.js';
import { ajvSchemaCompiler } from './adapters/ajv/ajv-schema-compiler.js';
import { threadedSchemaCheck } from './adapters/ajv/threaded-schema-check.js';
import { schemaHttp } from './adapters/http/schema-routes.js';
import { validationMigrations } from './adapters/sql/migrations.js';
import { schemaHistoryProjection, sqlSchemaCatalog, sqlVerdictLog } from './adapters/sql/sql-schema-catalog.js';

export const validationTables: ContextTables = { migrations: [validationMigrations], inlineProjections: [schemaHistoryProjection] };

export function validationModule({ store, db, clock }: ModuleDeps, schemaOrder: 'log' | 'time' = 'log'): ContextModule {
  const schemas = sqlSchemaCatalog(db);
  // Items are checked where the subscriber runs; schemas being saved, on a thread of their own.
  const check = threadedSchemaCheck();
  return {
    name: 'validation',
    subscribers: [
      validationSubscriber({ clock, compiler: ajvSchemaCompiler(), catalog: sqlSchemaCatalog, verdicts: sqlVerdictLog, schemaOrder }),
    ],
    stop: () => check.close(),
    http: [
      schemaHttp({
        register: registerSchema({ store, clock, check }),
        remove: removeSchema({ store, clock }),
        get: getSchema(schemas),
        list: (page) => schemas.list(page),
      }),
    ],
  };
}

import js from '@eslint/js';
import tseslint from 'typescript-eslint';

import { existsSync, readdirSync } from 'node:fs';

// A bounded context is a folder of src/ with a module.ts: the rules below follow new contexts on their own.
const contexts = readdirSync('src', { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(`src/${entry.name}/module.ts`))
  .map((entry) => entry.name);

/** The architecture as lint rules: domain code is pure, and contexts meet only through events. */
const boundaries = [
  {
    files: ['src/*/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/application/**', '**/adapters/**', '**/app/**', '**/cli/**'],
              message: 'domain code imports only its own domain and shared/.',
            },
            {
              group: ['fastify', 'fastify/*', '@fastify/*', 'kysely', 'better-sqlite3', 'pg', 'pino', 'node:fs', 'node:http', 'undici'],
              message: 'domain code does no I/O.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/*/application/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/adapters/**', '**/app/**', '**/cli/**', 'fastify', '@fastify/*'],
              message: 'application code depends on ports, not adapters.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: [...contexts.map((c) => `**/${c}/**`), '**/app/**', '**/cli/**'], message: 'the shared kernel knows no context.' },
          ],
        },
      ],
    },
  },
  ...contexts.map((context) => ({
    files: [`src/${context}/**/*.ts`],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: contexts.filter((c) => c !== context).map((c) => `**/${c}/**`),
              message: 'contexts never import each other: they meet through events.',
            },
          ],
        },
      ],
    },
  })),
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'test-artifacts/', 'public/vendor/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        setImmediate: 'readonly',
        clearTimeout: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  ...boundaries,
);

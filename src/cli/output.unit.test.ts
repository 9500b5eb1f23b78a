import { describe, expect, it } from 'vitest';
import { table } from './output.js';

describe('a table for the terminal', () => {
  it('shows control characters as escapes, so a name cannot start rows of its own or recolour the table', () => {
    const shown = table(['APP ID', 'NAME'], [['shop', 'Shop\nforged   row\u001b[31m']]);
    expect(shown.split('\n')).toHaveLength(2);
    expect(shown).toContain('Shop\\u000aforged   row\\u001b[31m');
  });
});

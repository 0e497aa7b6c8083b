import type { Command } from 'commander';

// Placeholder until the explain command lands.
export function registerExplain(_program: Command): void {}

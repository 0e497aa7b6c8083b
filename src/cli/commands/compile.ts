import type { Command } from 'commander';

// Placeholder until the compile command lands.
export function registerCompile(_program: Command): void {}

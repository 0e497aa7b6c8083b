import type { Command } from 'commander';

// Placeholder until the matrix command lands.
export function registerMatrix(_program: Command): void {}

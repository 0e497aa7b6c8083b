import type { Command } from 'commander';

// Placeholder until the lab command lands.
export function registerLab(_program: Command): void {}

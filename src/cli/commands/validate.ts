import type { Command } from 'commander';

// Placeholder until the validate command lands.
export function registerValidate(_program: Command): void {}

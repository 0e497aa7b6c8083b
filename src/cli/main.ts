// moat's entry point: wires commands, and is the one top-level error handler.
import { Command, CommanderError } from 'commander';
import { MoatError } from '../errors.js';
import { VERSION } from './version.js';
import { registerValidate } from './commands/validate.js';
import { registerMatrix } from './commands/matrix.js';
import { registerExplain } from './commands/explain.js';
import { registerLint } from './commands/lint.js';
import { registerDiff } from './commands/diff.js';
import { registerCompile } from './commands/compile.js';
import { registerLab } from './commands/lab.js';
import { registerAgent } from './commands/agent.js';
import { registerFlows } from './commands/flows.js';
import { registerDoctor } from './commands/doctor.js';

export function buildProgram(): Command {
  const program = new Command('moat')
    .description('Kubernetes NetworkPolicy, enforced in the Linux kernel with nftables')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerValidate(program);
  registerMatrix(program);
  registerExplain(program);
  registerLint(program);
  registerDiff(program);
  registerCompile(program);
  registerLab(program);
  registerAgent(program);
  registerFlows(program);
  registerDoctor(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof MoatError) {
      process.stderr.write(`moat: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(
      `moat: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return 70;
  }
}

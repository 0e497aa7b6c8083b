// The small set of error classes. The CLI's one top-level handler prints `message` (never a stack
// trace) for these; anything else is a bug and is printed with its stack.

export class MoatError extends Error {
  override readonly name: string = 'MoatError';
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number = 1;
}

/** A field-level problem in a user's object, printed as FILE:LINE: KIND NS/NAME: FIELD: message. */
export interface Problem {
  readonly file: string;
  readonly line: number;
  readonly kind: string;
  /** "ns/name", or "name" for cluster-scoped objects. */
  readonly object: string;
  readonly field: string;
  readonly message: string;
}

export function formatProblem(p: Problem): string {
  const where = p.field === '' ? '' : ` ${p.field}:`;
  return `${p.file}:${p.line}: ${p.kind} ${p.object}:${where} ${p.message}`;
}

/** The user's input is invalid (YAML syntax, schema, API validation). */
export class InputError extends MoatError {
  override readonly name = 'InputError';
  constructor(
    readonly problems: readonly Problem[],
    summary?: string,
  ) {
    super(summary ?? problems.map(formatProblem).join('\n'));
  }
}

/** Wrong command-line usage. */
export class UsageError extends MoatError {
  override readonly name = 'UsageError';
  override readonly exitCode = 2;
}

/** An external command (nft, ip, conntrack) failed. */
export class CommandError extends MoatError {
  override readonly name = 'CommandError';
  constructor(
    readonly command: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`${command.join(' ')} failed (exit ${code ?? 'signal'}): ${stderr.trim()}`);
  }
}

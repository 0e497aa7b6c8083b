// The agent's logger: JSON lines with levels (pino), behind a small interface so the source, the
// wiring and tests do not depend on pino.
import { pino, type DestinationStream } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export type LogFields = Readonly<Record<string, unknown>>;

export interface Log {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** A JSON logger writing to `dest` (default: stdout, synchronously, so a crash loses no line). */
export function createLog(level: LogLevel, dest?: DestinationStream): Log {
  const p = pino(
    { level, base: { name: 'moat-agent' }, timestamp: pino.stdTimeFunctions.isoTime },
    dest ?? pino.destination({ dest: 1, sync: true }),
  );
  const at =
    (fn: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, fields?: LogFields): void => {
      if (fields === undefined) p[fn](msg);
      else p[fn]({ ...fields }, msg);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Discards everything (library default). */
export const silentLog: Log = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Turns an error into a log field: the message, plus the HTTP status when there is one. */
export function errorField(err: unknown): string {
  if (err instanceof Error) {
    const status = (err as { statusCode?: unknown }).statusCode;
    return typeof status === 'number' ? `${err.message} (HTTP ${status})` : err.message;
  }
  return String(err);
}

// Placeholder: the YAML/JSON loader with API-server validation is being written.
import type { Problem } from '../errors.js';
import type { Snapshot } from './types.js';
import { emptySnapshot } from './types.js';

export interface LoadResult {
  readonly snapshot: Snapshot;
  /** Validation problems, with FILE:LINE and field paths. Empty when all input is valid. */
  readonly problems: readonly Problem[];
  /** One-line notes for stderr (skipped kinds). */
  readonly notes: readonly string[];
}

/** Loads files, directories (recursive *.yaml, *.yml, *.json) and "-" (stdin). */
export function loadPaths(_paths: readonly string[]): Promise<LoadResult> {
  return Promise.resolve({ snapshot: emptySnapshot, problems: [], notes: ['loader not implemented yet'] });
}

/** Loads one YAML or JSON text (multi-document, kind: List). */
export function loadText(_text: string, _file: string): LoadResult {
  return { snapshot: emptySnapshot, problems: [], notes: [] };
}

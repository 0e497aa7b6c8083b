// Reading untyped JSON (API objects, CNI results) without casts at every step.

/** The value as an object with string keys, or undefined when it is not one (null, array, scalar). */
export function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

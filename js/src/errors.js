// Tether's errors as plain JS, shared by the core and the channel's connecting side (which must
// not load the core: it carries no WebAssembly).

/** The stable error codes. */
export const ERROR_CODES = Object.freeze([
  'Network', 'Auth', 'Protocol', 'Integrity', 'Storage', 'Cancelled', 'InvalidInput',
]);

/** An `Error` with Tether's stable `name` and `code`, like those thrown from wasm. */
export function tetherError(code, message, detail) {
  const e = new Error(message);
  e.name = `${code}Error`;
  e.code = code;
  if (detail) e.detail = detail;
  if (code === 'Network') e.retryable = true;
  return e;
}

/** Whether `e` is an error from Tether (has one of the stable codes). */
export function isTetherError(e) {
  return e instanceof Error && typeof e.code === 'string' && ERROR_CODES.includes(e.code);
}

/** Error types (Error.name of lib/errors.ts classes) that no retry can fix: bad input and corrupted data. */
export const NON_RETRYABLE_ERRORS = ['BadInputError', 'IntegrityError'];

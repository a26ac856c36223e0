'use strict'
// The admin API's own error codes, beside the store's (the binding's ErrorCode): the `code`
// of an `{ error: { code, message } }` answer that no store call gave. The page gets them
// from /constants.js, like the binding's names.

const AdminErrorCode = Object.freeze({
  /** 409: creating a user or role whose id / name is taken. */
  AlreadyExists: 'ALREADY_EXISTS',
  /** 401: a login with the wrong admin token. */
  BadToken: 'BAD_TOKEN',
  /** 413: a request body over the limit. */
  BodyTooLarge: 'BODY_TOO_LARGE',
  /** 403: a change without the session's CSRF token. */
  Csrf: 'CSRF',
  /** 403: a change from another site or origin. */
  Forbidden: 'FORBIDDEN',
  /** 409: a state change to the state the key already has (the page is behind). */
  KeyChanged: 'KEY_CHANGED',
  /** 405 */
  MethodNotAllowed: 'METHOD_NOT_ALLOWED',
  /** 404: no such API route. */
  NotFound: 'NOT_FOUND',
  /** 429: another login from the same address is being checked. */
  TooManyLogins: 'TOO_MANY_LOGINS',
  /** 401: no session, or it expired. */
  Unauthenticated: 'UNAUTHENTICATED',
  /** 415: a change whose body is not declared JSON. */
  UnsupportedMediaType: 'UNSUPPORTED_MEDIA_TYPE',
})

module.exports = { AdminErrorCode }

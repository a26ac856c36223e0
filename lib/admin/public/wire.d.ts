// The admin API's answers as the page reads them: the package's records as JSON (instants
// as ISO strings). Types only (npm run typecheck); the API itself is lib/admin/routes/.
import type { ApiKey, KeyState, Role, User } from '../../../index.js'

/** `T` after JSON.stringify and JSON.parse. */
export type Json<T> = T extends Date ? string : T extends readonly (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T

export type KeyJson = Json<ApiKey>
/** A role of GET /api/roles: with the users that hold it. */
export type RoleJson = Json<Role> & { users: string[] }
/** A user of GET /api/users: with its keys counted, in all and by state. */
export type UserRow = Json<User> & { keys: { total: number } & Record<KeyState, number> }
/** POST /api/rules/validate */
export interface RuleCheck {
  ok: boolean
  rules: string[]
  errors: { line: number; rule: string; message: string }[]
}

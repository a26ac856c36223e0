// The types of ./constants.js, which the admin server writes from the binding when the page
// asks for it (lib/admin/constants.js); there is no such file on disk.
import type * as binding from '../../../binding.js'

export declare const Reason: typeof binding.Reason
export declare const KeyState: typeof binding.KeyState
export declare const UserStatus: typeof binding.UserStatus
export declare const AuditAction: typeof binding.AuditAction
export declare const ErrorCode: typeof binding.ErrorCode
export declare const AdminErrorCode: typeof import('../codes.js').AdminErrorCode

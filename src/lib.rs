//! The Node.js binding: thin conversions between JavaScript values and the
//! core's types. `lib/store.js` wraps these functions into the public `KeyStore`.

mod admin;
mod convert;
mod hot;

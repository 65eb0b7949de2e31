//! Script verification flags (Bitcoin Core's `SCRIPT_VERIFY_*`), the bits
//! libbitcoinkernel takes.
//!
//! Owns only the constants, at the bottom of `chain/` so the network
//! parameters (`script_flag_exceptions`), signet and the script verifier
//! all name them without importing each other; [`super::script`]
//! re-exports them (`chain::script::VERIFY_*`) and checks at compile time
//! that [`VERIFY_ALL`] is the kernel's. No thread of its own.

/// No script flags.
pub const VERIFY_NONE: u32 = bitcoinkernel::VERIFY_NONE;
/// Evaluate P2SH subscripts (BIP16).
pub const VERIFY_P2SH: u32 = bitcoinkernel::VERIFY_P2SH;
/// Strict DER signatures (BIP66).
pub const VERIFY_DERSIG: u32 = bitcoinkernel::VERIFY_DERSIG;
/// Empty dummy argument to `OP_CHECKMULTISIG` (BIP147).
pub const VERIFY_NULLDUMMY: u32 = bitcoinkernel::VERIFY_NULLDUMMY;
/// `OP_CHECKLOCKTIMEVERIFY` (BIP65).
pub const VERIFY_CHECKLOCKTIMEVERIFY: u32 = bitcoinkernel::VERIFY_CHECKLOCKTIMEVERIFY;
/// `OP_CHECKSEQUENCEVERIFY` (BIP112).
pub const VERIFY_CHECKSEQUENCEVERIFY: u32 = bitcoinkernel::VERIFY_CHECKSEQUENCEVERIFY;
/// Segregated witness (BIP141/143).
pub const VERIFY_WITNESS: u32 = bitcoinkernel::VERIFY_WITNESS;
/// Taproot (BIP341/342).
pub const VERIFY_TAPROOT: u32 = bitcoinkernel::VERIFY_TAPROOT;

/// Every flag libbitcoinkernel accepts.
pub const VERIFY_ALL: u32 = VERIFY_P2SH
    | VERIFY_DERSIG
    | VERIFY_NULLDUMMY
    | VERIFY_CHECKLOCKTIMEVERIFY
    | VERIFY_CHECKSEQUENCEVERIFY
    | VERIFY_WITNESS
    | VERIFY_TAPROOT;

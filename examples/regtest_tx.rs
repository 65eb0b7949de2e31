//! Regtest signing helper for the scripts in `scripts/` (strand has no
//! wallet): derives the P2WPKH address of a private key, and signs a
//! one-input, one-output transaction spending a P2WPKH output of that key.
//!
//! ```text
//! regtest_tx address KEY
//!     prints the key's regtest P2WPKH address (bcrt1q...)
//! regtest_tx sign KEY TXID:VOUT AMOUNT_SATS DESTINATION [FEE_SATS]
//!     prints the raw hex of a transaction spending TXID:VOUT (worth
//!     AMOUNT_SATS, paying KEY's P2WPKH address) to DESTINATION, which
//!     receives AMOUNT_SATS - FEE_SATS (fee 1,000 sat by default)
//! regtest_tx block PREV_HASH HEIGHT MEDIAN_TIME ADDRESS [RAW_TX_HEX...]
//!     prints the raw hex of a mined regtest block on PREV_HASH (at
//!     HEIGHT) holding the given transactions in order, its coinbase
//!     paying the subsidy to ADDRESS (fees are left unclaimed, which is
//!     valid), its time max(now, MEDIAN_TIME + 1); for `submitblock`
//! ```
//!
//! KEY is a WIF key (testnet/regtest prefix, compressed) or 64 hex digits.
//! The amount must be the spent output's exact value: a P2WPKH signature
//! commits to it. Signing uses `bitcoin`'s `SighashCache` (BIP143,
//! `SIGHASH_ALL`) and `bitcoin::secp256k1`. `block` exists because
//! strand's `generatetoaddress` mines coinbase-only blocks and its
//! `generateblock` is not wired yet; it uses `strand::mining`.
//!
//! Exit codes: 0 on success, 2 on a usage error or bad input (one line on
//! stderr).
//!
//!     cargo run --release --example regtest_tx -- address 0101010101010101010101010101010101010101010101010101010101010101

use std::process::ExitCode;
use std::str::FromStr;

use bitcoin::absolute::LockTime;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Address, Amount, CompressedPublicKey, Network, OutPoint, PrivateKey, ScriptBuf, Sequence,
    Transaction, TxIn, TxOut, Witness,
};

const USAGE: &str = "usage: regtest_tx address KEY\n       \
regtest_tx sign KEY TXID:VOUT AMOUNT_SATS DESTINATION [FEE_SATS]\n       \
regtest_tx block PREV_HASH HEIGHT MEDIAN_TIME ADDRESS [RAW_TX_HEX...]";

/// Default fee: about 9 sat/vB for the 110-vbyte transaction built here.
const DEFAULT_FEE_SATS: u64 = 1_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("regtest_tx: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["address", key] => Ok(p2wpkh_address(&parse_key(key)?)?.to_string()),
        ["sign", key, outpoint, amount, dest] => sign(key, outpoint, amount, dest, None),
        ["sign", key, outpoint, amount, dest, fee] => sign(key, outpoint, amount, dest, Some(*fee)),
        ["block", prev, height, mtp, address, txs @ ..] => block(prev, height, mtp, address, txs),
        _ => Err(USAGE.to_string()),
    }
}

/// A compressed regtest private key from WIF or 64 hex digits.
fn parse_key(s: &str) -> Result<PrivateKey, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let sk = SecretKey::from_str(s).map_err(|e| format!("bad hex key: {e}"))?;
        return Ok(PrivateKey::new(sk, Network::Regtest));
    }
    let key = PrivateKey::from_wif(s).map_err(|e| format!("bad WIF key: {e}"))?;
    if key.network != bitcoin::NetworkKind::Test {
        return Err("WIF key is for mainnet, not regtest".into());
    }
    if !key.compressed {
        return Err("WIF key is uncompressed; P2WPKH needs a compressed key".into());
    }
    Ok(key)
}

fn p2wpkh_address(key: &PrivateKey) -> Result<Address, String> {
    let secp = Secp256k1::signing_only();
    let pk = CompressedPublicKey::from_private_key(&secp, key).map_err(|e| e.to_string())?;
    Ok(Address::p2wpkh(&pk, Network::Regtest))
}

fn sign(
    key: &str,
    outpoint: &str,
    amount: &str,
    dest: &str,
    fee: Option<&str>,
) -> Result<String, String> {
    let key = parse_key(key)?;
    let outpoint =
        OutPoint::from_str(outpoint).map_err(|e| format!("bad outpoint {outpoint:?}: {e}"))?;
    let amount = Amount::from_sat(
        amount
            .parse()
            .map_err(|_| format!("bad amount {amount:?} (satoshis)"))?,
    );
    let fee = match fee {
        Some(f) => Amount::from_sat(f.parse().map_err(|_| format!("bad fee {f:?} (satoshis)"))?),
        None => Amount::from_sat(DEFAULT_FEE_SATS),
    };
    let dest = regtest_address(dest)?;
    let value = amount
        .checked_sub(fee)
        .filter(|v| *v >= Amount::from_sat(546))
        .ok_or_else(|| format!("amount {amount} minus fee {fee} leaves less than 546 sat"))?;

    let secp = Secp256k1::new();
    let pk = CompressedPublicKey::from_private_key(&secp, &key).map_err(|e| e.to_string())?;
    let spent_script = ScriptBuf::new_p2wpkh(&pk.wpubkey_hash());
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: dest.script_pubkey(),
        }],
    };
    let mut cache = SighashCache::new(tx);
    let sighash = cache
        .p2wpkh_signature_hash(0, &spent_script, amount, EcdsaSighashType::All)
        .map_err(|e| format!("sighash: {e}"))?;
    let signature = secp.sign_ecdsa(&Message::from(sighash), &key.inner);
    let signature = bitcoin::ecdsa::Signature {
        signature,
        sighash_type: EcdsaSighashType::All,
    };
    *cache
        .witness_mut(0)
        .ok_or_else(|| "no input 0".to_string())? = Witness::p2wpkh(&signature, &pk.0);
    Ok(bitcoin::consensus::encode::serialize_hex(
        &cache.into_transaction(),
    ))
}

fn regtest_address(s: &str) -> Result<Address, String> {
    Address::from_str(s)
        .map_err(|e| format!("bad address {s:?}: {e}"))?
        .require_network(Network::Regtest)
        .map_err(|e| format!("{s:?} is not a regtest address: {e}"))
}

fn block(
    prev: &str,
    height: &str,
    median_time: &str,
    address: &str,
    raw_txs: &[&str],
) -> Result<String, String> {
    use bitcoin::consensus::encode::deserialize_hex;
    let prev = bitcoin::BlockHash::from_str(prev).map_err(|e| format!("bad PREV_HASH: {e}"))?;
    let height: u32 = height
        .parse()
        .map_err(|_| format!("bad HEIGHT {height:?}"))?;
    let median_time: u32 = median_time
        .parse()
        .map_err(|_| format!("bad MEDIAN_TIME {median_time:?}"))?;
    let script = regtest_address(address)?.script_pubkey();
    let txs = raw_txs
        .iter()
        .enumerate()
        .map(|(i, hex)| {
            deserialize_hex::<Transaction>(hex).map_err(|e| format!("bad raw transaction {i}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let time = now.max(median_time.saturating_add(1));
    let template = strand::mining::BlockTemplate::regtest(prev, height, time, txs, Amount::ZERO);
    let mut block = strand::mining::build_block(template, script).map_err(|e| e.to_string())?;
    if !strand::mining::mine(&mut block, 1 << 32) {
        return Err("no valid nonce found".into());
    }
    Ok(bitcoin::consensus::encode::serialize_hex(&block))
}

//! Consensus parameters per network (mainnet, testnet3, testnet4, signet,
//! regtest).
//!
//! Owns [`ChainParams`]: proof-of-work limits and retarget rules, buried
//! soft-fork heights, subsidy schedule, coinbase maturity, checkpoints and the
//! historical exceptions Bitcoin Core hard-codes. Immutable data, built once at
//! start-up and shared read-only by every thread (chain, sync, script workers).
//!
//! Source of every value: Bitcoin Core v26 `src/kernel/chainparams.cpp`
//! (`CMainParams`, `CTestNetParams`, `SigNetParams`, `CRegTestParams`; v31's
//! `CTestNet4Params` for testnet4) and
//! `validation.cpp` (`IsBIP30Repeat`, `script_flag_exceptions`); the default
//! signet challenge and the magic a challenge implies (`SigNetParams`).

use std::str::FromStr;

use bitcoin::consensus::encode;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::hex::FromHex;
use bitcoin::p2p::Magic;
use bitcoin::pow::{CompactTarget, Target, Work};
use bitcoin::{BlockHash, Network};

use super::flags;

/// Blocks a coinbase output must wait before it can be spent (Core
/// `COINBASE_MATURITY`).
pub const COINBASE_MATURITY: u32 = 100;
/// How far (seconds) a block timestamp may be ahead of the node's adjusted
/// time (Core `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// Number of previous blocks whose timestamps form the median time past.
pub const MEDIAN_TIME_SPAN: u32 = 11;

/// The default signet's challenge, a 1-of-2 bare multisig (Core
/// `chainparams.cpp`, `SigNetParams`).
pub const DEFAULT_SIGNET_CHALLENGE: &str = "512103ad5e0edad18cb1f0fc0d28a3d4f1f3e445640337489abb10404f2d1e086be430210359ef5021964fe22d6f8e05b2463c9540ce96883fe3b278760f048f5189f2e6c452ae";

/// The default signet challenge as bytes.
pub fn default_challenge() -> Vec<u8> {
    Vec::from_hex(DEFAULT_SIGNET_CHALLENGE).unwrap_or_default()
}

/// The network magic of a signet with `challenge`: the first four bytes of
/// SHA256d of the challenge serialized as a script (length-prefixed), as
/// Core's `SigNetParams` derives `pchMessageStart`. The default challenge
/// gives `0a03cf40`.
pub fn signet_magic(challenge: &[u8]) -> Magic {
    let data = encode::serialize(&challenge.to_vec());
    let hash = sha256d::Hash::hash(&data).to_byte_array();
    Magic::from_bytes([hash[0], hash[1], hash[2], hash[3]])
}

/// Consensus parameters of one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainParams {
    /// Which network these parameters describe.
    pub network: Network,
    /// Hash of the genesis block.
    pub genesis_hash: BlockHash,
    /// Easiest allowed target (Core `powLimit`).
    pub pow_limit: Target,
    /// Target block spacing in seconds (600).
    pub pow_target_spacing: u32,
    /// Retarget timespan in seconds (two weeks).
    pub pow_target_timespan: u32,
    /// Testnet 20-minute rule: a block more than twice the spacing after its
    /// parent may use the minimum difficulty (Core
    /// `fPowAllowMinDifficultyBlocks`).
    pub allow_min_difficulty_blocks: bool,
    /// Difficulty never changes (regtest; Core `fPowNoRetargeting`).
    pub no_retargeting: bool,
    /// First height where the coinbase must start with the height (BIP34).
    pub bip34_height: u32,
    /// Hash of the block at `bip34_height`, if fixed (used by the BIP30 rule).
    pub bip34_hash: Option<BlockHash>,
    /// First height where version >= 4 and CHECKLOCKTIMEVERIFY apply (BIP65).
    pub bip65_height: u32,
    /// First height where version >= 3 and strict DER apply (BIP66).
    pub bip66_height: u32,
    /// First height of BIP68/112/113 (relative lock-time, CSV, MTP locktime).
    pub csv_height: u32,
    /// First height of segregated witness rules (BIP141/143/147).
    pub segwit_height: u32,
    /// First height from which taproot (BIP341/342) is known active. Script
    /// flags follow Core's `GetBlockScriptFlags`, which verifies taproot on
    /// every block except the one listed in `script_flag_exceptions`; this
    /// height is informational.
    pub taproot_height: u32,
    /// Blocks between subsidy halvings.
    pub subsidy_halving_interval: u32,
    /// Blocks a coinbase must wait before being spent.
    pub coinbase_maturity: u32,
    /// Hard-coded `(height, hash)` checkpoints.
    pub checkpoints: Vec<(u32, BlockHash)>,
    /// Blocks that violate a script rule and get special flags instead
    /// (Core `script_flag_exceptions`): `(hash, script flags)` (`flags::VERIFY_*`).
    pub script_flag_exceptions: Vec<(BlockHash, u32)>,
    /// The two historical blocks exempt from BIP30 (`IsBIP30Repeat`):
    /// `(height, hash)`.
    pub bip30_exceptions: Vec<(u32, BlockHash)>,
    /// Signet only: the script every block's solution must satisfy (Core's
    /// `signet_blocks` and `signet_challenge`). Also decides the network
    /// magic ([`ChainParams::magic`]).
    pub signet_challenge: Option<Vec<u8>>,
    /// Core's `nMinimumChainWork` (v31): a header chain with less work is
    /// not stored (headers pre-sync) and the node stays in initial block
    /// download until its tip has at least this much.
    pub minimum_chain_work: Work,
    /// Core's `defaultAssumeValid` (v31); `None` on regtest and custom signets.
    pub default_assume_valid: Option<BlockHash>,
    /// Core's DNS seed host names (`vSeeds`).
    pub dns_seeds: Vec<&'static str>,
    /// The network's default P2P port (Core's `nDefaultPort`).
    pub default_port: u16,
    /// BIP94 (testnet4; Core `enforce_BIP94`): the first block of a
    /// difficulty period may not be more than `MAX_TIMEWARP` before its
    /// parent, and a retarget scales the period's first block's target, not
    /// the last one's, so minimum-difficulty blocks cannot drag it down.
    pub enforce_bip94: bool,
}

/// BIP94: how far (seconds) the first block of a difficulty period may be
/// before its parent (Core `MAX_TIMEWARP`, consensus/consensus.h).
pub const MAX_TIMEWARP: u32 = 600;

/// Parses a constant hash; the constants below are checked by unit tests, so
/// the all-zero fallback is never used (and never panics).
fn h(hex: &str) -> BlockHash {
    BlockHash::from_str(hex).unwrap_or_else(|_| BlockHash::all_zeros())
}

/// Parses a constant big-endian 256-bit hex number into an amount of work.
fn work(hex: &str) -> Work {
    Work::from_be_bytes(<[u8; 32]>::from_hex(hex).unwrap_or([0; 32]))
}

/// Parses a constant big-endian 256-bit hex number into a target.
fn target(hex: &str) -> Target {
    Target::from_be_bytes(<[u8; 32]>::from_hex(hex).unwrap_or([0; 32]))
}

impl ChainParams {
    /// Parameters for `network`; `None` for networks strand does not support.
    pub fn for_network(network: Network) -> Option<ChainParams> {
        match network {
            Network::Bitcoin => Some(Self::mainnet()),
            Network::Testnet => Some(Self::testnet()),
            Network::Signet => Some(Self::signet()),
            Network::Testnet4 => Some(Self::testnet4()),
            Network::Regtest => Some(Self::regtest()),
        }
    }

    /// Bitcoin mainnet.
    pub fn mainnet() -> ChainParams {
        ChainParams {
            network: Network::Bitcoin,
            genesis_hash: h("000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"),
            pow_limit: target("00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            pow_target_spacing: 600,
            pow_target_timespan: 14 * 24 * 60 * 60,
            allow_min_difficulty_blocks: false,
            no_retargeting: false,
            bip34_height: 227_931,
            bip34_hash: Some(h(
                "000000000000024b89b42a942fe0d9fea3bb44ab7bd1b19115dd6a759c0808b8",
            )),
            bip65_height: 388_381,
            bip66_height: 363_725,
            csv_height: 419_328,
            segwit_height: 481_824,
            taproot_height: 709_632,
            subsidy_halving_interval: 210_000,
            coinbase_maturity: COINBASE_MATURITY,
            checkpoints: [
                (
                    11111,
                    "0000000069e244f73d78e8fd29ba2fd2ed618bd6fa2ee92559f542fdb26e7c1d",
                ),
                (
                    33333,
                    "000000002dd5588a74784eaa7ab0507a18ad16a236e7b1ce69f00d7ddfb5d0a6",
                ),
                (
                    74000,
                    "0000000000573993a3c9e41ce34471c079dcf5f52a0e824a81e7f953b8661a20",
                ),
                (
                    105000,
                    "00000000000291ce28027faea320c8d2b054b2e0fe44a773f3eefb151d6bdc97",
                ),
                (
                    134444,
                    "00000000000005b12ffd4cd315cd34ffd4a594f430ac814c91184a0d42d2b0fe",
                ),
                (
                    168000,
                    "000000000000099e61ea72015e79632f216fe6cb33d7899acb35b75c8303b763",
                ),
                (
                    193000,
                    "000000000000059f452a5f7340de6682a977387c17010ff6e6c3bd83ca8b1317",
                ),
                (
                    210000,
                    "000000000000048b95347e83192f69cf0366076336c639f9b7228e9ba171342e",
                ),
                (
                    216116,
                    "00000000000001b4f4b433e81ee46494af945cf96014816a4e2370f11b23df4e",
                ),
                (
                    225430,
                    "00000000000001c108384350f74090433e7fcf79a606b8e797f065b130575932",
                ),
                (
                    250000,
                    "000000000000003887df1f29024b06fc2200b55f8af8f35453d7be294df2d214",
                ),
                (
                    279000,
                    "0000000000000001ae8c72a0b0c301f67e3afca10e819efa9041e458e9bd7e40",
                ),
                (
                    295000,
                    "00000000000000004d9b4ef50f0f9d686fd69db2e03af35a100370c64632a983",
                ),
            ]
            .iter()
            .map(|(height, hash)| (*height, h(hash)))
            .collect(),
            script_flag_exceptions: vec![
                // BIP16 exception: the one block violating P2SH rules.
                (
                    h("00000000000002dc756eebf4f49723ed8d30cc28a5f108eb94b1ba88ac4f9c22"),
                    flags::VERIFY_NONE,
                ),
                // Taproot exception.
                (
                    h("0000000000000000000f14c35b2d841e986ab5441de8c585d5ffe55ea1e395ad"),
                    flags::VERIFY_P2SH | flags::VERIFY_WITNESS,
                ),
            ],
            signet_challenge: None,
            minimum_chain_work: work(
                "0000000000000000000000000000000000000001128750f82f4c366153a3a030",
            ),
            // Height 938,343.
            default_assume_valid: Some(h(
                "00000000000000000000ccebd6d74d9194d8dcdc1d177c478e094bfad51ba5ac",
            )),
            dns_seeds: vec![
                "dnsseed.bluematt.me",
                "seed.bitcoin.jonasschnelli.ch",
                "seed.btc.petertodd.net",
                "seed.bitcoin.sprovoost.nl",
                "dnsseed.emzy.de",
                "seed.bitcoin.wiz.biz",
                "seed.mainnet.achownodes.xyz",
            ],
            default_port: 8333,
            enforce_bip94: false,
            bip30_exceptions: vec![
                (
                    91_842,
                    h("00000000000a4d0a398161ffc163c503763b1f4360639393e0e4c8e300e0caec"),
                ),
                (
                    91_880,
                    h("00000000000743f190a18c5577a3c2d2a1f610ae9601ac046a38084ccb7cd721"),
                ),
            ],
        }
    }

    /// Bitcoin testnet3.
    pub fn testnet() -> ChainParams {
        ChainParams {
            network: Network::Testnet,
            genesis_hash: h("000000000933ea01ad0ee984209779baaec3ced90fa3f408719526f8d77f4943"),
            pow_limit: target("00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            pow_target_spacing: 600,
            pow_target_timespan: 14 * 24 * 60 * 60,
            allow_min_difficulty_blocks: true,
            no_retargeting: false,
            bip34_height: 21_111,
            bip34_hash: Some(h(
                "0000000023b3a96d3484e5abb3755c413e7d41500f8e2a5c3f0dd01299cd8ef8",
            )),
            bip65_height: 581_885,
            bip66_height: 330_776,
            csv_height: 770_112,
            segwit_height: 834_624,
            // Core: taproot min_activation_height 0 on testnet; script flags
            // enable it on all blocks.
            taproot_height: 0,
            subsidy_halving_interval: 210_000,
            coinbase_maturity: COINBASE_MATURITY,
            checkpoints: vec![(
                546,
                h("000000002a936ca763904c3c35fce2f3556c559c0214345d31b1bcebf76acb70"),
            )],
            script_flag_exceptions: vec![(
                // BIP16 exception.
                h("00000000dd30457c001f4095d208cc1296b0eed002427aa599874af7a432b105"),
                flags::VERIFY_NONE,
            )],
            bip30_exceptions: Vec::new(),
            signet_challenge: None,
            minimum_chain_work: work(
                "0000000000000000000000000000000000000000000017dde1c649f3708d14b6",
            ),
            // Height 4,842,348.
            default_assume_valid: Some(h(
                "000000007a61e4230b28ac5cb6b5e5a0130de37ac1faf2f8987d2fa6505b67f4",
            )),
            dns_seeds: vec![
                "testnet-seed.bitcoin.jonasschnelli.ch",
                "seed.tbtc.petertodd.net",
                "seed.testnet.bitcoin.sprovoost.nl",
                "testnet-seed.bluematt.me",
                "seed.testnet.achownodes.xyz",
            ],
            default_port: 18333,
            enforce_bip94: false,
        }
    }

    /// testnet4 (Core `CTestNet4Params`): testnet3's minimum-difficulty
    /// rule with BIP94, every soft fork from height 1.
    pub fn testnet4() -> ChainParams {
        ChainParams {
            network: Network::Testnet4,
            genesis_hash: h("00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"),
            pow_limit: target("00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            pow_target_spacing: 600,
            pow_target_timespan: 14 * 24 * 60 * 60,
            allow_min_difficulty_blocks: true,
            no_retargeting: false,
            bip34_height: 1,
            bip34_hash: None,
            bip65_height: 1,
            bip66_height: 1,
            csv_height: 1,
            segwit_height: 1,
            taproot_height: 0,
            subsidy_halving_interval: 210_000,
            coinbase_maturity: COINBASE_MATURITY,
            checkpoints: Vec::new(),
            script_flag_exceptions: Vec::new(),
            bip30_exceptions: Vec::new(),
            signet_challenge: None,
            minimum_chain_work: work(
                "0000000000000000000000000000000000000000000009a0fe15d0177d086304",
            ),
            // Height 123,613.
            default_assume_valid: Some(h(
                "0000000002368b1e4ee27e2e85676ae6f9f9e69579b29093e9a82c170bf7cf8a",
            )),
            dns_seeds: vec![
                "seed.testnet4.bitcoin.sprovoost.nl",
                "seed.testnet4.wiz.biz",
            ],
            default_port: 48333,
            enforce_bip94: true,
        }
    }

    /// The default signet.
    pub fn signet() -> ChainParams {
        ChainParams {
            network: Network::Signet,
            genesis_hash: h("00000008819873e925422c1ff0f99f7cc9bbb232af63a077a480a3633bee1ef6"),
            pow_limit: target("00000377ae000000000000000000000000000000000000000000000000000000"),
            pow_target_spacing: 600,
            pow_target_timespan: 14 * 24 * 60 * 60,
            allow_min_difficulty_blocks: false,
            no_retargeting: false,
            bip34_height: 1,
            bip34_hash: None,
            bip65_height: 1,
            bip66_height: 1,
            csv_height: 1,
            segwit_height: 1,
            taproot_height: 0,
            subsidy_halving_interval: 210_000,
            coinbase_maturity: COINBASE_MATURITY,
            checkpoints: Vec::new(),
            script_flag_exceptions: Vec::new(),
            bip30_exceptions: Vec::new(),
            signet_challenge: Some(default_challenge()),
            minimum_chain_work: work(
                "00000000000000000000000000000000000000000000000000000b463ea0a4b8",
            ),
            // Height 293,175.
            default_assume_valid: Some(h(
                "00000008414aab61092ef93f1aacc54cf9e9f16af29ddad493b908a01ff5c329",
            )),
            dns_seeds: vec![
                "seed.signet.bitcoin.sprovoost.nl",
                "seed.signet.achownodes.xyz",
            ],
            default_port: 38333,
            enforce_bip94: false,
        }
    }

    /// Local regression-test chain (Core defaults, no `-testactivationheight`).
    pub fn regtest() -> ChainParams {
        ChainParams {
            network: Network::Regtest,
            genesis_hash: h("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"),
            pow_limit: target("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            pow_target_spacing: 600,
            pow_target_timespan: 14 * 24 * 60 * 60,
            allow_min_difficulty_blocks: true,
            no_retargeting: true,
            bip34_height: 1,
            bip34_hash: None,
            bip65_height: 1,
            bip66_height: 1,
            csv_height: 1,
            segwit_height: 0,
            taproot_height: 0,
            subsidy_halving_interval: 150,
            coinbase_maturity: COINBASE_MATURITY,
            checkpoints: vec![(
                0,
                h("0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"),
            )],
            script_flag_exceptions: Vec::new(),
            bip30_exceptions: Vec::new(),
            signet_challenge: None,
            minimum_chain_work: work(
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
            default_assume_valid: None,
            dns_seeds: Vec::new(),
            default_port: 18444,
            enforce_bip94: false,
        }
    }

    /// A custom signet: the default signet's rules and genesis block with
    /// blocks signed for `challenge` (Core's `-signetchallenge`).
    pub fn custom_signet(challenge: Vec<u8>) -> ChainParams {
        ChainParams {
            signet_challenge: Some(challenge),
            // Core: a custom challenge has no minimum work, no assumed-valid
            // block and no seeds.
            minimum_chain_work: work(
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
            default_assume_valid: None,
            dns_seeds: Vec::new(),
            ..Self::signet()
        }
    }

    /// The P2P message start: the network's, or for a signet the one its
    /// challenge derives (Core's `SigNetParams`).
    pub fn magic(&self) -> Magic {
        match &self.signet_challenge {
            Some(c) => signet_magic(c),
            None => Magic::from(self.network),
        }
    }

    /// Blocks per difficulty period (2016).
    pub fn difficulty_adjustment_interval(&self) -> u32 {
        self.pow_target_timespan / self.pow_target_spacing.max(1)
    }

    /// `pow_limit` in compact form (Core `UintToArith256(powLimit).GetCompact()`).
    pub fn pow_limit_bits(&self) -> CompactTarget {
        self.pow_limit.to_compact_lossy()
    }

    /// The checkpoint hash at `height`, if any.
    pub fn checkpoint_at(&self, height: u32) -> Option<BlockHash> {
        self.checkpoints
            .iter()
            .find(|(h, _)| *h == height)
            .map(|(_, hash)| *hash)
    }

    /// Height of the last checkpoint (0 when there are none).
    pub fn last_checkpoint_height(&self) -> u32 {
        self.checkpoints.iter().map(|(h, _)| *h).max().unwrap_or(0)
    }
}

/// What a network's history looked like at a recent block (Core's
/// `ChainTxData`), for estimating verification progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChainTxData {
    /// Unix time of the last known transaction count (`nTime`).
    pub time: i64,
    /// Transactions from genesis up to `time` (`tx_count`).
    pub tx_count: u64,
    /// Transactions per second after `time` (`dTxRate`).
    pub tx_rate: f64,
}

impl ChainParams {
    /// Core 31's `chainTxData` (kernel/chainparams.cpp) for this network;
    /// a custom signet has none (all zero), regtest only a small rate.
    pub fn chain_tx_data(&self) -> ChainTxData {
        let (time, tx_count, tx_rate) = match self.network {
            Network::Signet if self.signet_challenge != Self::signet().signet_challenge => {
                (0, 0, 0.0)
            }
            Network::Bitcoin => (1_772_055_173, 1_315_805_869, 5.401_110_064_961_22),
            Network::Testnet => (1_772_051_651, 536_108_416, 0.026_914_790_162_571_17),
            Network::Testnet4 => (1_772_013_387, 14_191_421, 0.018_485_795_795_284_12),
            Network::Signet => (1_772_055_248, 28_676_833, 0.067_366_234_363_389_29),
            _ => (0, 0, 0.001),
        };
        ChainTxData {
            time,
            tx_count,
            tx_rate,
        }
    }

    /// Core's `GuessVerificationProgress`: the share of the network's
    /// transactions verified with the tip at `tip_time`, whose chain holds
    /// `chain_tx` transactions, `behind` blocks below the best header, at
    /// Unix time `now`. 0 when `chain_tx` is unknown.
    pub fn guess_verification_progress(
        &self,
        chain_tx: u64,
        tip_time: u32,
        behind: u32,
        now: i64,
    ) -> f64 {
        if chain_tx == 0 {
            return 0.0;
        }
        let data = self.chain_tx_data();
        // Core: a tip within two hours of now counts by height, so progress
        // reaches exactly 1.0 at the best header.
        let block_time = if (now - i64::from(tip_time)).abs() <= 2 * 60 * 60 {
            now - i64::from(behind) * i64::from(self.pow_target_spacing)
        } else {
            i64::from(tip_time)
        };
        let total = if chain_tx <= data.tx_count {
            data.tx_count as f64 + (now - data.time) as f64 * data.tx_rate
        } else {
            chain_tx as f64 + (now - block_time) as f64 * data.tx_rate
        };
        if total <= 0.0 {
            return 1.0;
        }
        (chain_tx as f64 / total).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_hashes_match_bitcoin_crate() {
        for net in [
            Network::Bitcoin,
            Network::Testnet,
            Network::Signet,
            Network::Testnet4,
            Network::Regtest,
        ] {
            let p = ChainParams::for_network(net).expect("supported");
            assert_eq!(
                p.genesis_hash,
                bitcoin::constants::genesis_block(net).block_hash(),
                "{net:?}"
            );
        }
    }

    #[test]
    fn minimum_chain_work_is_core_v31() {
        let zero = Work::from_be_bytes([0; 32]);
        assert!(ChainParams::mainnet().minimum_chain_work > zero);
        assert!(
            ChainParams::mainnet().minimum_chain_work > ChainParams::testnet().minimum_chain_work
        );
        assert_eq!(ChainParams::regtest().minimum_chain_work, zero);
        assert_eq!(
            ChainParams::custom_signet(vec![0x51]).minimum_chain_work,
            zero
        );
        assert_eq!(
            ChainParams::mainnet()
                .default_assume_valid
                .map(|h| h.to_string())
                .as_deref(),
            Some("00000000000000000000ccebd6d74d9194d8dcdc1d177c478e094bfad51ba5ac")
        );
        assert_eq!(ChainParams::mainnet().default_port, 8333);
        assert_eq!(ChainParams::regtest().dns_seeds.len(), 0);
    }

    #[test]
    fn constants_parse() {
        let p = ChainParams::mainnet();
        assert!(p
            .checkpoints
            .iter()
            .all(|(_, h)| *h != BlockHash::all_zeros()));
        assert_eq!(p.checkpoints.len(), 13);
        assert_eq!(p.last_checkpoint_height(), 295_000);
        assert!(p
            .script_flag_exceptions
            .iter()
            .all(|(h, _)| *h != BlockHash::all_zeros()));
        assert!(p
            .bip30_exceptions
            .iter()
            .all(|(_, h)| *h != BlockHash::all_zeros()));
        assert_eq!(p.difficulty_adjustment_interval(), 2016);
        assert_eq!(p.pow_limit_bits().to_consensus(), 0x1d00ffff);
        assert_eq!(
            ChainParams::regtest().pow_limit_bits().to_consensus(),
            0x207fffff
        );
        assert_eq!(
            ChainParams::signet().pow_limit_bits().to_consensus(),
            0x1e0377ae
        );
        assert!(ChainParams::testnet().checkpoint_at(546).is_some());
        assert_eq!(ChainParams::regtest().subsidy_halving_interval, 150);
        assert_eq!(ChainParams::regtest().segwit_height, 0);
        assert_eq!(ChainParams::signet().magic(), Magic::SIGNET);
        assert_eq!(ChainParams::regtest().magic(), Magic::REGTEST);
        let custom = ChainParams::custom_signet(vec![0x51]);
        assert_ne!(custom.magic(), Magic::SIGNET);
        assert_eq!(custom.genesis_hash, ChainParams::signet().genesis_hash);
    }

    #[test]
    fn testnet4_is_core_v31() {
        let p = ChainParams::for_network(Network::Testnet4).expect("supported");
        assert_eq!(
            p.genesis_hash.to_string(),
            "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"
        );
        assert_eq!(p.magic(), Magic::from_bytes([0x1c, 0x16, 0x3f, 0x28]));
        assert_eq!(p.default_port, 48333);
        assert!(p.enforce_bip94 && p.allow_min_difficulty_blocks && !p.no_retargeting);
        assert_eq!(
            (
                p.bip34_height,
                p.bip65_height,
                p.bip66_height,
                p.csv_height,
                p.segwit_height
            ),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(p.pow_limit_bits().to_consensus(), 0x1d00ffff);
        assert!(p.minimum_chain_work > ChainParams::regtest().minimum_chain_work);
        assert!(p.default_assume_valid.is_some());
        assert_eq!(p.dns_seeds.len(), 2);
        assert!(!ChainParams::testnet().enforce_bip94);
        assert!(!ChainParams::mainnet().enforce_bip94);
    }
}

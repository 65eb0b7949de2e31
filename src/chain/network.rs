//! The networks strand follows ([`Network`]) and their constants: message
//! magic, Core's default ports and data subdirectories, genesis hash. Pure
//! data, part of the chain layer so the chain state can pick its parameters
//! without reaching up to the node's configuration; `config` and the crate
//! root re-export it. Used from any thread.

use std::fmt;

use bitcoin::p2p::Magic;
use bitcoin::BlockHash;

/// The chain a node follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// Bitcoin mainnet.
    Mainnet,
    /// testnet3.
    Testnet,
    /// The default signet.
    Signet,
    /// testnet4 (BIP94), Core v28+'s fourth test network.
    Testnet4,
    /// Local regression-test chain.
    Regtest,
}

impl Network {
    /// The `bitcoin` crate's name for this network.
    pub fn to_bitcoin(self) -> bitcoin::Network {
        match self {
            Network::Mainnet => bitcoin::Network::Bitcoin,
            Network::Testnet => bitcoin::Network::Testnet,
            Network::Signet => bitcoin::Network::Signet,
            Network::Testnet4 => bitcoin::Network::Testnet4,
            Network::Regtest => bitcoin::Network::Regtest,
        }
    }

    /// The four bytes that start every P2P message on this network.
    pub fn magic(self) -> Magic {
        Magic::from(self.to_bitcoin())
    }

    /// Bitcoin Core's default P2P port.
    pub fn default_p2p_port(self) -> u16 {
        match self {
            Network::Mainnet => 8333,
            Network::Testnet => 18333,
            Network::Signet => 38333,
            Network::Testnet4 => 48333,
            Network::Regtest => 18444,
        }
    }

    /// Bitcoin Core's default RPC port.
    pub fn default_rpc_port(self) -> u16 {
        match self {
            Network::Mainnet => 8332,
            Network::Testnet => 18332,
            Network::Signet => 38332,
            Network::Testnet4 => 48332,
            Network::Regtest => 18443,
        }
    }

    /// The subdirectory of the data directory this network's files live in
    /// (empty for mainnet), as Bitcoin Core lays it out.
    pub fn data_subdir(self) -> &'static str {
        match self {
            Network::Mainnet => "",
            Network::Testnet => "testnet3",
            Network::Signet => "signet",
            Network::Testnet4 => "testnet4",
            Network::Regtest => "regtest",
        }
    }

    /// Hash of the genesis block.
    pub fn genesis_hash(self) -> BlockHash {
        bitcoin::constants::genesis_block(self.to_bitcoin()).block_hash()
    }

    /// Lower-case name, as used in logs and RPC (`main`, `test`, `signet`,
    /// `testnet4`, `regtest`; Core's `ChainTypeToString`).
    pub fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "main",
            Network::Testnet => "test",
            Network::Signet => "signet",
            Network::Testnet4 => "testnet4",
            Network::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testnet4_constants_are_core_v31() {
        let n = Network::Testnet4;
        assert_eq!(
            n.genesis_hash().to_string(),
            "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043"
        );
        assert_eq!(n.magic().to_bytes(), [0x1c, 0x16, 0x3f, 0x28]);
        assert_eq!(n.default_p2p_port(), 48333);
        assert_eq!(n.default_rpc_port(), 48332);
        assert_eq!(n.data_subdir(), "testnet4");
        assert_eq!(n.name(), "testnet4");
        assert_eq!(n.to_bitcoin(), bitcoin::Network::Testnet4);
    }
}

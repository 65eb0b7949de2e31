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
            Network::Regtest => 18444,
        }
    }

    /// Bitcoin Core's default RPC port.
    pub fn default_rpc_port(self) -> u16 {
        match self {
            Network::Mainnet => 8332,
            Network::Testnet => 18332,
            Network::Signet => 38332,
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
            Network::Regtest => "regtest",
        }
    }

    /// Hash of the genesis block.
    pub fn genesis_hash(self) -> BlockHash {
        bitcoin::constants::genesis_block(self.to_bitcoin()).block_hash()
    }

    /// Lower-case name, as used in logs and RPC (`main`, `test`, `signet`, `regtest`).
    pub fn name(self) -> &'static str {
        match self {
            Network::Mainnet => "main",
            Network::Testnet => "test",
            Network::Signet => "signet",
            Network::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

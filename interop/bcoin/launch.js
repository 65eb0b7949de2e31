#!/usr/bin/env node
// Starts a bcoin full node on regtest for strand's interoperability tests
// (tests/bcoin.rs): loopback only, no DNS seeds, no UPnP or external-IP
// discovery, no wallet, chain and mempool in memory.
//
//   node launch.js PORT HTTP_PORT API_KEY PREFIX_DIR
//
// PORT is the P2P port, HTTP_PORT the HTTP/JSON-RPC port (basic auth, user
// `x`, password API_KEY), PREFIX_DIR a directory bcoin may write to. When
// the node is up it prints one line:
//
//   bcoin ready p2p=127.0.0.1:PORT http=127.0.0.1:HTTP_PORT
//
// SIGTERM or SIGINT close the node and exit with code 0. The log level is
// BCOIN_LOG_LEVEL (default `info`); logs go to stdout.

'use strict';

const bcoin = require('bcoin');

function usage(msg) {
  process.stderr.write(`launch.js: ${msg}\n`);
  process.stderr.write('usage: node launch.js PORT HTTP_PORT API_KEY PREFIX_DIR\n');
  process.exit(2);
}

function port(s, what) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    usage(`bad ${what} '${s}'`);
  return n;
}

const args = process.argv.slice(2);
if (args.length !== 4)
  usage('expected 4 arguments');

const p2pPort = port(args[0], 'port');
const httpPort = port(args[1], 'http port');
const apiKey = args[2];
const prefix = args[3];
if (!apiKey)
  usage('empty api key');

const node = new bcoin.FullNode({
  network: 'regtest',
  prefix,
  memory: true,
  workers: false,
  logLevel: process.env.BCOIN_LOG_LEVEL || 'info',
  logConsole: true,
  logFile: false,
  host: '127.0.0.1',
  port: p2pPort,
  publicHost: '127.0.0.1',
  publicPort: p2pPort,
  listen: true,
  upnp: false,
  seeds: [],
  httpHost: '127.0.0.1',
  httpPort,
  apiKey,
  // Not the wallet plugin: FullNode has no plugins unless given some.
  plugins: []
});

// Both would reach outside the machine (UPnP, external-IP lookups over DNS).
node.pool.discoverExternal = async () => {};
node.pool.discoverGateway = async () => {};
node.pool.discoverSeeds = async () => {};

let closing = false;
async function shutdown(signal) {
  if (closing)
    return;
  closing = true;
  process.stdout.write(`bcoin stopping on ${signal}\n`);
  try {
    await node.close();
  } catch (e) {
    process.stderr.write(`launch.js: close failed: ${e.stack || e}\n`);
    process.exit(1);
  }
  process.exit(0);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// If the test runner dies without signalling, stdin (a pipe it holds) closes.
if (process.env.BCOIN_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', () => shutdown('stdin EOF'));
  process.stdin.resume();
}

(async () => {
  await node.ensure();
  await node.open();
  await node.connect();
  node.startSync();
  process.stdout.write(
    `bcoin ready p2p=127.0.0.1:${p2pPort} http=127.0.0.1:${httpPort}\n`);
})().catch((e) => {
  process.stderr.write(`launch.js: ${e.stack || e}\n`);
  process.exit(1);
});

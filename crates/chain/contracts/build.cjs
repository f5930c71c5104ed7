// Compiles the test contracts with solc-js (npm `solc`, exactly 0.8.37) and
// writes their creation bytecode, as hex, beside them: TestToken.bin and
// TestNft.bin. The output is deterministic (no metadata is appended), so
// running this again must leave the committed .bin files unchanged:
//
//   npm install --prefix /tmp/solc solc@0.8.37
//   NODE_PATH=/tmp/solc/node_modules node crates/chain/contracts/build.cjs
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

if (!solc.version().startsWith("0.8.37+")) {
  console.error(`need solc-js 0.8.37, found ${solc.version()}`);
  process.exit(1);
}
const sources = {};
for (const file of ["TestToken.sol", "TestNft.sol"]) {
  sources[file] = { content: fs.readFileSync(path.join(__dirname, file), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    metadata: { appendCBOR: false },
    outputSelection: { "*": { "*": ["evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, contract] of Object.entries(contracts)) {
    const hex = contract.evm.bytecode.object;
    fs.writeFileSync(path.join(__dirname, `${name}.bin`), `${hex}\n`);
    console.log(`${file}: ${name}.bin, ${hex.length / 2} bytes`);
  }
}

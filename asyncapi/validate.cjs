// Validates asyncapi/asyncapi.yaml with the AsyncAPI parser (the library the AsyncAPI CLI
// validates with, its rules included) and its protobuf schema parser, then checks that every
// protobuf message it shows is the message of the same name in schema/events.proto.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { Parser, fromFile } = require("@asyncapi/parser");
const { ProtoBuffSchemaParser } = require("@asyncapi/protobuf-schema-parser");
const protobuf = require("protobufjs");

const root = path.join(__dirname, "..");

// Field names, numbers, types and labels; values of enums.
function shape(type) {
  if (type instanceof protobuf.Enum) return { values: type.values };
  return Object.fromEntries(
    type.fieldsArray.map((f) => [f.name, { id: f.id, type: f.type, repeated: f.repeated, optional: Boolean(f.options?.proto3_optional) }]),
  );
}

function messages(protoText) {
  const types = {};
  const visit = (namespace) => {
    for (const nested of namespace.nestedArray ?? []) {
      if (nested instanceof protobuf.Type || nested instanceof protobuf.Enum) types[nested.name] = shape(nested);
      if (nested.nestedArray) visit(nested);
    }
  };
  visit(protobuf.parse(protoText, { keepCase: true }).root);
  return types;
}

(async () => {
  const parser = new Parser();
  parser.registerSchemaParser(ProtoBuffSchemaParser());
  const { document, diagnostics } = await fromFile(parser, path.join(root, "asyncapi/asyncapi.yaml")).parse();
  const problems = diagnostics.filter((d) => d.severity <= 1);
  for (const d of problems) console.log(`${["error", "warning", "info", "hint"][d.severity]}: ${d.message} at ${d.path.join(".")}`);
  if (!document || problems.length) {
    console.error("asyncapi/asyncapi.yaml: invalid");
    process.exit(1);
  }
  const source = messages(fs.readFileSync(path.join(root, "schema/events.proto"), "utf8"));
  const raw = require("js-yaml").load(fs.readFileSync(path.join(root, "asyncapi/asyncapi.yaml"), "utf8"));
  let drift = 0;
  for (const [name, schema] of Object.entries(raw.components.schemas)) {
    if (!String(schema.schemaFormat).startsWith("application/vnd.google.protobuf")) continue;
    for (const [type, fields] of Object.entries(messages(schema.schema))) {
      if (JSON.stringify(fields) !== JSON.stringify(source[type])) {
        console.error(`${name}: ${type} differs from schema/events.proto`);
        drift += 1;
      }
    }
  }
  if (drift) process.exit(1);
  console.log(`asyncapi/asyncapi.yaml: valid AsyncAPI ${document.version()}, ${document.channels().length} channels, protobuf messages as in schema/events.proto`);
})();

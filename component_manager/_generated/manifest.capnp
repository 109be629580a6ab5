# GENERATED copy of protos/manifest.capnp. Do not edit.
# The compiled component manifest (.cm). Mirrors component_manager/manifest/decl.py.
#
# A .cm file is one CompiledManifest message; `manifest` holds the bytes of one Manifest
# message and `fingerprint` is sha256(manifest). The loader refuses a file unless it is
# exactly the canonical encoding of those two fields. Enumerations travel as their text
# ("parent", "strong", ...) and config values as JSON text ("" for none).
@0xaa4dd47cebb3c5cc;

struct CompiledManifest {
  version @0 :UInt32;
  fingerprint @1 :Data;
  manifest @2 :Data;
}

struct Manifest {
  hasProgram @0 :Bool;
  program @1 :Program;
  capabilities @2 :List(Capability);
  uses @3 :List(Use);
  offers @4 :List(Offer);
  exposes @5 :List(Expose);
  children @6 :List(Child);
  collections @7 :List(Collection);
  config @8 :List(ConfigField);
}

struct KeyValue {
  key @0 :Text;
  value @1 :Text;
}

struct Program {
  runner @0 :Text;
  module @1 :Text;
  binary @2 :Text;
  entry @3 :Text;
  args @4 :List(Text);
  env @5 :List(KeyValue);
  stopEvent @6 :Text;
  ready @7 :Text;
  startTimeoutMs @8 :UInt64;
  stopTimeoutMs @9 :UInt64;
  idleTimeoutMs @10 :UInt64;
  memoryLimitBytes @11 :UInt64;
  cpuLimit @12 :Float64;
  pidsLimit @13 :UInt32;
  openFilesLimit @14 :UInt32;
  priority @15 :Int32;
  restart @16 :Restart;
  health @17 :Health;           # no probe when it has neither grpc nor exec
  hooks @18 :Hooks;
  on @19 :Triggers;
  maxRunTimeMs @20 :UInt64;
  node @21 :Text;               # ray runner: the node's cm-node label; "" for any node
  resources @22 :List(KeyValue);  # ray runner: resource name -> amount (as text)
}

# A command is a list of words; lists of commands are lists of those.
struct Restart {
  policy @0 :Text;              # "" in a child/collection override: no override
  initialDelayMs @1 :UInt64;
  maxDelayMs @2 :UInt64;
  resetAfterMs @3 :UInt64;
  maxRestarts @4 :UInt32;
  withinMs @5 :UInt64;
  escalate @6 :Bool;
}

struct Health {
  grpc @0 :Bool;
  exec @1 :List(Text);
  periodMs @2 :UInt64;
  timeoutMs @3 :UInt64;
  failures @4 :UInt32;
  initialDelayMs @5 :UInt64;
}

struct Hooks {
  preStart @0 :List(List(Text));
  postStop @1 :List(List(Text));
  timeoutMs @2 :UInt64;
}

struct Triggers {
  start @0 :List(List(Text));
  failure @1 :List(List(Text));
  exit @2 :List(List(Text));
}

struct Capability {
  kind @0 :Text;
  name @1 :Text;
  path @2 :Text;
  type @3 :Text;
  value @4 :Text;
}

struct Use {
  kind @0 :Text;
  sourceName @1 :Text;
  source @2 :Text;
  sourceChild @3 :Text;
  targetName @4 :Text;
  path @5 :Text;
  key @6 :Text;
  availability @7 :Text;
  dependency @8 :Text;
}

struct Offer {
  kind @0 :Text;
  sourceName @1 :Text;
  source @2 :Text;
  target @3 :Text;
  targetChild @4 :Text;
  sourceChild @5 :Text;
  targetName @6 :Text;
  availability @7 :Text;
  dependency @8 :Text;
}

struct Expose {
  kind @0 :Text;
  sourceName @1 :Text;
  source @2 :Text;
  sourceChild @3 :Text;
  targetName @4 :Text;
  availability @5 :Text;
}

struct Child {
  name @0 :Text;
  url @1 :Text;
  startup @2 :Text;
  configOverrides @3 :List(KeyValue);
  hasPriority @4 :Bool;
  priority @5 :Int32;
  restart @6 :Restart;
}

struct Collection {
  name @0 :Text;
  durability @1 :Text;
  hasPriority @2 :Bool;
  priority @3 :Int32;
  restart @4 :Restart;
}

struct ConfigField {
  key @0 :Text;
  type @1 :Text;
  elementType @2 :Text;
  maxSize @3 :UInt32;
  maxCount @4 :UInt32;
  default @5 :Text;
  mutability @6 :List(Text);
}

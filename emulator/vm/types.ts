// The contracts between the parts of the Java Card VM: the parsed CAP model (JCVM 3.0.5 ch. 6), the linked runtime
// model, the heap, the native API binding and the cycle profile. Types only; each part implements its side.

// ---------------------------------------------------------------------------------------------------------------
// 1. The CAP model: every component as a typed value (cap/parse.ts reads it, cap/write.ts writes it, the linker
//    consumes it). Offsets are those of the specification: into the Class component's info (class offsets), into the
//    Method component's info (method offsets), into the static field image (static field offsets).
// ---------------------------------------------------------------------------------------------------------------

export interface CapPackageRef {
  aid: Uint8Array;
  major: number;
  minor: number;
}

/** A class reference in the constant pool or the Class component (JCVM §6.8.1): internal by offset, or external. */
export type CapClassRef =
  | { internal: true; classOffset: number }
  /** `pkg` indexes the Import component (the high bit of the byte is the "external" marker, already removed). */
  | { internal: false; pkg: number; classToken: number };

/** Static field / static method reference (JCVM §6.8.5, §6.8.6): internal offset or external tokens. */
export type CapStaticRef =
  | { internal: true; offset: number }
  | { internal: false; pkg: number; classToken: number; token: number };

export type CpEntry =
  | { tag: 1; kind: 'class'; ref: CapClassRef }
  | { tag: 2; kind: 'instanceField'; cls: CapClassRef; token: number }
  | { tag: 3; kind: 'virtualMethod'; cls: CapClassRef; token: number }
  | { tag: 4; kind: 'superMethod'; cls: CapClassRef; token: number }
  | { tag: 5; kind: 'staticField'; ref: CapStaticRef }
  | { tag: 6; kind: 'staticMethod'; ref: CapStaticRef };

export interface CapInterfaceInfo {
  kind: 'interface';
  /** Offset of this entry in the Class component's info. */
  offset: number;
  /** ACC_INTERFACE 0x8, ACC_SHAREABLE 0x4, ACC_REMOTE 0x2 (the upper nibble of bitfield, §6.8.1). */
  flags: number;
  superInterfaces: CapClassRef[];
  /** CAP 2.2 interface_name_info of a remote interface (ACC_REMOTE), kept raw so offsets survive a rewrite. */
  remoteInfo?: Uint8Array;
}

export interface CapImplementedInterface {
  iface: CapClassRef;
  /** Method table indexes of this class implementing the interface's methods, by interface method token. */
  indexes: number[];
}

export interface CapClassInfo {
  kind: 'class';
  offset: number;
  /** ACC_SHAREABLE 0x4, ACC_REMOTE 0x2 (upper nibble of bitfield); interface count is the lower nibble. */
  flags: number;
  /** null only for java.lang.Object, which lives in the API. */
  superclass: CapClassRef | null;
  /** Instance field cells declared in this class (int = 2 cells). */
  declaredInstanceSize: number;
  /** First reference token of this class's instance fields, 0xFF if none. */
  firstReferenceToken: number;
  referenceCount: number;
  publicMethodTableBase: number;
  publicMethodTableCount: number;
  packageMethodTableBase: number;
  packageMethodTableCount: number;
  /** Method offsets (0xFFFF = inherited / not here) for public virtual tokens base..base+count-1. */
  publicVirtualMethodTable: number[];
  packageVirtualMethodTable: number[];
  interfaces: CapImplementedInterface[];
  /** CAP 2.2 remote_interface_info of a remote class (ACC_REMOTE), kept raw so offsets survive a rewrite. */
  remoteInfo?: Uint8Array;
}

export type CapClassEntry = CapInterfaceInfo | CapClassInfo;

export interface CapExceptionHandler {
  /** Offsets into the Method component's info. */
  startOffset: number;
  /** Length of the protected range; the stop bit (b15) is kept apart in `stop`. */
  activeLength: number;
  stop: boolean;
  handlerOffset: number;
  /** Constant pool index of the caught class, 0 = any (finally). */
  catchTypeIndex: number;
}

/** A method header (§6.9): max_stack and max_locals in words; nargs includes `this`. */
export interface CapMethodHeader {
  flags: number; // ACC_EXTENDED 0x8, ACC_ABSTRACT 0x4
  maxStack: number;
  nargs: number;
  maxLocals: number;
  /** Size of the header (2 or 4 bytes): bytecode starts at offset + headerSize. */
  headerSize: number;
}

export interface CapMethodComponent {
  handlers: CapExceptionHandler[];
  /** The whole info item (handler_count, handlers, then the methods); method offsets index into it. */
  info: Uint8Array;
}

export interface CapStaticFieldComponent {
  imageSize: number;
  referenceCount: number;
  arrayInits: { type: number; values: Uint8Array }[];
  defaultValueCount: number;
  nonDefaultValues: Uint8Array;
}

export interface CapExportClass {
  classOffset: number;
  staticFieldOffsets: number[];
  staticMethodOffsets: number[];
}

/** Descriptor component (§6.13); optional on download but the converter and tools use it. */
export interface CapFieldDescriptor {
  token: number;
  flags: number;
  /** Static: a static field reference; instance: the class ref + token. */
  field: { static: true; ref: CapStaticRef } | { static: false; cls: CapClassRef; token: number };
  /** Primitive type code (0x8002 boolean, 0x8003 byte, 0x8004 short, 0x8005 int) or a type-descriptor offset. */
  type: number;
}
export interface CapMethodDescriptor {
  token: number;
  flags: number;
  methodOffset: number;
  typeOffset: number;
  bytecodeCount: number;
  exceptionHandlerCount: number;
  exceptionHandlerIndex: number;
}
export interface CapClassDescriptor {
  token: number;
  flags: number;
  thisClass: CapClassRef;
  interfaces: CapClassRef[];
  fields: CapFieldDescriptor[];
  methods: CapMethodDescriptor[];
}
export interface CapDescriptorComponent {
  classes: CapClassDescriptor[];
  /** type_descriptor_info: constant pool types (offset per CP entry, 0xFFFF none) and the packed type descriptors. */
  constantPoolTypes: number[];
  typeDescriptors: Uint8Array;
}

export interface CapPackage {
  formatMajor: number;
  formatMinor: number;
  /** ACC_INT 0x01, ACC_EXPORT 0x02, ACC_APPLET 0x04. */
  flags: number;
  package: CapPackageRef & { name?: string };
  applets: { aid: Uint8Array; installMethodOffset: number }[];
  imports: CapPackageRef[];
  constantPool: CpEntry[];
  classes: CapClassEntry[];
  /** CAP 2.2 Class component signature_pool bytes (remote methods only); class offsets count them. */
  classSignaturePool?: Uint8Array;
  method: CapMethodComponent;
  staticField: CapStaticFieldComponent;
  /** Offsets into the Method component's info of 1-byte and 2-byte constant-pool-index operands (decoded, absolute). */
  refLocation: { byteIndex: number[]; byte2Index: number[] };
  exports?: CapExportClass[];
  descriptor?: CapDescriptorComponent;
  /** Directory component values that are not derivable (custom components); sizes are recomputed by the writer. */
  customComponents?: { tag: number; aid: Uint8Array; data: Uint8Array }[];
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Values and the heap. A reference is a small positive integer (0 = null). Stack and local words are 16-bit values
//    held in an Int32Array (sign-extended); an int takes two words, high word first (JCVM §3.1).
// ---------------------------------------------------------------------------------------------------------------

export type Ref = number;
export const NULL: Ref = 0;

/** Array element kinds, numbered like the newarray/checkcast atype codes (JCVM §7.5.59). */
export const ArrayKind = { Boolean: 10, Byte: 11, Short: 12, Int: 13, Reference: 14 } as const;
export type ArrayKind = (typeof ArrayKind)[keyof typeof ArrayKind];

/** JCSystem constants (javacard.framework.JCSystem): NOT_A_TRANSIENT_OBJECT 0, CLEAR_ON_RESET 1, CLEAR_ON_DESELECT 2. */
export const Memory = { Persistent: 0, ClearOnReset: 1, ClearOnDeselect: 2 } as const;
export type Memory = (typeof Memory)[keyof typeof Memory];

/** A firewall context: one per package that defines applets (JCRE 3.0.5 §6.1.1); 0 is the JCRE's. */
export type ContextId = number;
export const JCRE_CONTEXT: ContextId = 0;

export interface HeapArray {
  readonly ref: Ref;
  readonly kind: ArrayKind;
  readonly length: number;
  /** Byte/boolean arrays: Uint8Array (read signed with `<< 24 >> 24`); short: Int16Array; int: Int32Array; reference: Int32Array of refs. */
  readonly data: Uint8Array | Int16Array | Int32Array;
  readonly memory: Memory;
  readonly owner: ContextId;
  /** Global arrays (APDU buffer, install parameters) are accessible from every context (JCRE §6.2.2). */
  readonly global: boolean;
  /** For reference arrays: the element class (anewarray), for checkcast/aastore. */
  readonly elementClass?: LinkedClass;
}

export interface HeapInstance {
  readonly ref: Ref;
  readonly cls: LinkedClass;
  /** Instance field cells, indexed by the linked cell index (ints take two consecutive cells, high first). */
  readonly fields: Int32Array;
  readonly owner: ContextId;
  /**
   * State of API objects (keys, OwnerPIN, Signature …): a JSON-serialisable record kept with the object and persisted
   * with it. Change it only through Heap.setNative so transactions and tearing apply. Bulk data (key components, PIN
   * values) belongs in hidden heap arrays whose refs are stored here.
   */
  readonly native?: Readonly<Record<string, number | string | boolean | null>>;
  /** Volatile host-side cache of an API object (e.g. a node:crypto KeyObject, a Signature's init state); never persisted. */
  cache?: unknown;
  /** JCRE entry point objects (temporary or permanent, JCRE §6.2.1) are reachable from every context. */
  readonly entryPoint?: 'temporary' | 'permanent';
}

export type HeapObject = HeapArray | HeapInstance;

export function isArray(o: HeapObject): o is HeapArray {
  return (o as HeapArray).kind !== undefined;
}

/** Raised by the heap when the emulated power is cut at an armed persistent write; the chip then powers down. */
export interface TearingControl {
  /** Cut power at the nth persistent write from now (1 = the next one); writes are counted as the card would. */
  armTear(n: number): void;
  disarmTear(): void;
  /** Persistent writes since power-up (for tests that enumerate every write point). */
  readonly writeCount: number;
}

/**
 * The heap: objects, persistent and transient memory, transactions. All writes that may hit persistent memory go
 * through it, so that transactions roll back, tearing cuts at the right write, and the cycle meter sees every byte.
 * Accessors throw VmThrow (a Java exception) for null, bounds, firewall and type errors.
 */
export interface Heap extends TearingControl {
  get(ref: Ref): HeapObject; // NullPointerException for 0, SecurityException via checkAccess
  array(ref: Ref): HeapArray;
  instance(ref: Ref): HeapInstance;
  newArray(kind: ArrayKind, length: number, memory: Memory, owner: ContextId, elementClass?: LinkedClass): HeapArray;
  newInstance(cls: LinkedClass, owner: ContextId, native?: Record<string, number | string | boolean | null>): HeapInstance;
  /** Marks an array global (APDU buffer) or an instance as a JCRE entry point (temporary: APDU, JCRE exceptions —
   *  their field/native updates are RAM-like: never logged, torn or persisted, JCAPI CardException). */
  makeGlobal(ref: Ref, temporary?: boolean): void;

  storeArray(a: HeapArray, index: number, value: number): void; // bounds checked; value already truncated by caller
  storeField(o: HeapInstance, cell: number, value: number): void;
  storeStatic(statics: Int32Array, cell: number, value: number, owner: LinkedPackage): void;
  setNative(o: HeapInstance, key: string, value: number | string | boolean | null): void;
  /** Copy / fill with the atomicity of Util.arrayCopy (atomic) or arrayCopyNonAtomic / arrayFillNonAtomic. */
  copyBytes(src: HeapArray, srcOff: number, dst: HeapArray, dstOff: number, length: number, atomic: boolean): void;
  fillBytes(dst: HeapArray, off: number, length: number, value: number, atomic: boolean): void;
  /** Writes host bytes into a byte array (APDU buffer, crypto results): counted as persistent writes when dst is persistent. */
  writeBytes(dst: HeapArray, off: number, bytes: Uint8Array, atomic: boolean): void;

  // Transactions (JCSystem.beginTransaction …, JCRE §7).
  beginTransaction(): void; // TransactionException.IN_PROGRESS when nested
  commitTransaction(): void; // TransactionException.NOT_IN_PROGRESS
  abortTransaction(): void;
  readonly transactionDepth: number;
  /** Bytes of commit buffer used / available (JCSystem.getUnusedCommitCapacity, getMaxCommitCapacity). */
  readonly commitCapacity: { max: number; used: number };

  /** JCSystem.getAvailableMemory for MEMORY_TYPE_PERSISTENT / TRANSIENT_RESET / TRANSIENT_DESELECT. */
  availableMemory(memory: Memory): number;
  /** JCSystem.requestObjectDeletion: unreachable objects are freed at the start of the next process(). */
  requestObjectDeletion(): void;
  isObjectDeletionSupported(): boolean;

  /** Clears CLEAR_ON_DESELECT arrays of a context (all applets of that context deselected) or CLEAR_ON_RESET ones. */
  clearTransient(memory: Memory, owner?: ContextId): void;
  /** Makes this command's persistent writes durable in the chip store (one store commit); called once per APDU. */
  flush(): void;
  /** (H4) Makes the non-transactional persistent writes so far durable now (OwnerPIN try counter before the compare). */
  persistNow?(): void;

  // Heap control for the JCRE (H3 additions, docs/vm-memory.md).
  /** Unchecked lookup (no firewall, no exception): JCRE internals, Shareable dispatch; undefined for null/dead refs. */
  peek(ref: Ref): HeapObject | undefined;
  /** Named persistent roots (applet instances, JCRE tables) that object deletion keeps alive; set NULL to drop one. */
  readonly roots: { get(name: string): Ref; set(name: string, ref: Ref): void; names(): string[] };
  /** Binds a package's static image (pkg.statics, mutated in place) to its persisted cells: restored, or saved now. */
  attachStatics(pkg: LinkedPackage): void;
  /** A deleted package's statics: forgotten, their store key removed at the next flush. */
  detachStatics(aid: string): void;
  /** Re-reads the heap from the store (power-up after power loss): transient contents zero, no transaction open. */
  powerUp(): void;
  /** Frees unreachable objects now (between commands: the VM stack is not a root); returns how many were freed. */
  collect(): number;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. The linked runtime model (what the linker builds from a CapPackage, or from the native API tables).
// ---------------------------------------------------------------------------------------------------------------

export interface LinkedMethod {
  readonly pkg: LinkedPackage;
  /** Offset in the Method component (bytecode methods); -1 for natives. */
  readonly offset: number;
  readonly flags: number;
  readonly maxStack: number;
  readonly nargs: number;
  readonly maxLocals: number;
  /** Absolute start of the bytecode in pkg.code. */
  readonly codeStart: number;
  /** For API methods: the implementation; `args` are the argument words (this first), the result is pushed per `returns`. */
  readonly native?: NativeMethod;
  /** Return kind from the descriptor: V void, Z/B/S a word, I two words, L/[ a reference. */
  readonly returns: 'V' | 'W' | 'I' | 'R';
  /** "javacard.framework.Util.arrayCopy([BS[BSS)S" for API methods, "pkgAID:offset" for bytecode: logs and traces. */
  readonly name: string;
}

export interface LinkedClass {
  readonly pkg: LinkedPackage;
  /** Stable identity across power cycles, used to persist instances: "<pkgAID>:<class offset>" for bytecode classes,
   *  the Java name for API and hidden native classes. */
  readonly key: string;
  readonly name: string;
  /** The API implementation, when this class (or, for hidden classes, the class itself) is native. */
  readonly native?: NativeClassImpl;
  readonly isInterface: boolean;
  readonly isShareable: boolean;
  readonly superclass: LinkedClass | null;
  /** All interfaces this class or interface implements/extends, transitively. */
  readonly interfaces: readonly LinkedClass[];
  /** Instance cells of this class including superclasses. */
  readonly instanceCells: number;
  /** Virtual methods by token: public tokens then package-visible tokens (package ones only callable from pkg). */
  readonly publicVirtuals: (LinkedMethod | undefined)[];
  readonly packageVirtuals: (LinkedMethod | undefined)[];
  /** Interface dispatch: interface → method by interface method token. */
  readonly interfaceMethods: Map<LinkedClass, (LinkedMethod | undefined)[]>;
  /** First instance cell declared by this class (superclass cells come first). */
  readonly firstCell: number;
  /** Reference cells (for deletion and persistence of references). */
  readonly referenceCells: readonly number[];
}

export interface LinkedPackage {
  readonly aid: string;
  readonly major: number;
  readonly minor: number;
  readonly name: string;
  /** Firewall context of the package (JCRE_CONTEXT for the API). */
  readonly context: ContextId;
  readonly native: boolean;
  /** Method component info (bytecode); empty for native packages. */
  readonly code: Uint8Array;
  readonly handlers: readonly CapExceptionHandler[];
  /** The static field image, one cell per byte offset of the CAP image (cell = offset; a byte/short/reference field
   *  uses its first cell, an int its first two: high, low word — H2's linker; byte fields make offsets odd). */
  readonly statics: Int32Array;
  /** Reference statics come first (JCVM §6.10): their cell count, for object deletion; absent = every cell may be a ref. */
  readonly staticReferenceCells?: number;
  /** Resolved constant pool, same indexes as the CAP's. */
  readonly cp: readonly ResolvedCp[];
  /** Classes by Class-component offset (internal) and by token (exported / API). */
  readonly classesByOffset: ReadonlyMap<number, LinkedClass>;
  readonly classesByToken: ReadonlyMap<number, LinkedClass>;
}

export type ResolvedCp =
  | { kind: 'class'; cls: LinkedClass }
  | { kind: 'instanceField'; cls: LinkedClass; cell: number; type: 'a' | 'b' | 's' | 'i' | '?' }
  | { kind: 'virtualMethod'; cls: LinkedClass; token: number; isPublic: boolean }
  | { kind: 'superMethod'; cls: LinkedClass; method: LinkedMethod }
  | { kind: 'staticField'; pkg: LinkedPackage; cell: number }
  | { kind: 'staticMethod'; method: LinkedMethod };

// ---------------------------------------------------------------------------------------------------------------
// 4. Native API binding. An API method is implemented by a NativeMethod registered under its Java name and
//    descriptor, e.g. "javacard.framework.Util.arrayCopy([BS[BSS)S"; the linker finds tokens in
//    ../shared/reference/javacard-api-tokens.json and binds each to its implementation.
// ---------------------------------------------------------------------------------------------------------------

/** A Java exception in flight: the ref of the Throwable object. Natives throw it via Vm.throwApi. */
export class VmThrow extends Error {
  readonly ref: Ref;
  constructor(ref: Ref, what: string) {
    super(what);
    this.name = 'VmThrow';
    this.ref = ref;
  }
}

/** What a native method sees of the VM. */
export interface Vm {
  readonly heap: Heap;
  readonly cycles: CycleMeter;
  /** Context of the currently executing code (firewall). */
  readonly context: ContextId;
  /** AID of the applet whose context is active (JCSystem.getAID) and of the previous one (getPreviousContextAID). */
  readonly currentApplet: string | null;
  readonly previousApplet: string | null;
  /** The API class of this name ("javacard.framework.ISOException"), linked. */
  apiClass(name: string): LinkedClass;
  /** Throws a new (or the JCRE-owned reusable) instance of an API exception with a reason code (CardException family). */
  throwApi(className: string, reason?: number): never;
  /** Calls a bytecode or native method from a native (Applet.process via the JCRE, Shareable lookups, install). */
  invoke(method: LinkedMethod, args: number[]): number;
  /** Virtual dispatch from a native: the method of `ref`'s class for this API virtual method name. */
  invokeVirtual(ref: Ref, apiMethod: string, args: number[]): number;
  /** Per-command JCRE state: the APDU object and its buffer, the selected applet on the current channel, channel number. */
  readonly jcre: JcreState;
  readonly services: JcreServices;
}

/** What the JCRE (emulator/vm/runtime.ts) offers the framework natives beyond the heap. */
export interface JcreServices {
  /** Applet.register() / register(byte[],short,byte): binds the instance being installed to its AID (null = the install AID). */
  registerApplet(applet: Ref, aid: Uint8Array | null): void;
  /** The JCRE-owned AID object for an AID (JCSystem.lookupAID, getAID), or NULL when no such applet. */
  aidObject(aid: Uint8Array): Ref;
  /** JCSystem.getAppletShareableInterfaceObject: calls the server applet's getShareableInterfaceObject. */
  shareable(serverAid: Uint8Array, parameter: number): Ref;
  isAppletActive(aid: Uint8Array): boolean;
  /** Privileges and associated security domain of an applet (GPSystem, SecureChannel). */
  appletInfo(aid: string): { privileges: number; lifeCycle: number; securityDomain: string } | undefined;
  /** GPSystem.setCardContentState: the applet's own application-specific life cycle (GPCS §5.3.1). */
  setAppletLifeCycle(aid: string, state: number): boolean;
  /** Card life cycle for GPSystem.getCardState / lockCard / terminateCard. */
  cardLifeCycle(): number;
  setCardLifeCycle(state: number): boolean;
  /**
   * The secure channel of the applet's security domain (org.globalplatform.SecureChannel): processes INITIALIZE
   * UPDATE / EXTERNAL AUTHENTICATE and wraps/unwraps with that SD's keys. The session is per logical channel.
   */
  secureChannel(aid: string): SecureChannelService;
  /** Random bytes from the chip's RNG (RandomData, key generation); node:crypto underneath. */
  random(n: number): Uint8Array;
}

export interface SecureChannelService {
  /** A complete command APDU in, the response (data + SW) out; throws IsoError on refusal. */
  processSecurity(command: Uint8Array): { data: Uint8Array; sw: number };
  /** Unwraps a secured command (CLA b3): returns the plain command APDU, or throws IsoError (6982 …). */
  unwrap(command: Uint8Array): Uint8Array;
  wrap(response: Uint8Array, sw: number): Uint8Array;
  decryptData(data: Uint8Array): Uint8Array;
  encryptData(data: Uint8Array): Uint8Array;
  /** GP security level bits (AUTHENTICATED 0x80, C_DECRYPTION 0x02, C_MAC 0x01, R_ENCRYPTION 0x20, R_MAC 0x10). */
  securityLevel(): number;
  resetSecurity(): void;
}

export type NativeMethod = (vm: Vm, args: Int32Array) => number | void;

/** One API class implemented natively. Instances of API classes (OwnerPIN, keys, engines) are HeapInstances of it. */
export interface NativeClassImpl {
  /** Java name, e.g. "javacard.framework.OwnerPIN"; hidden implementation classes (e.g. an RSA private CRT key) use a
   *  name outside the API packages and list the API interfaces they implement. */
  name: string;
  /** For hidden classes: the API superclass and interfaces (Java names). */
  extends?: string;
  implements?: string[];
  /** Methods by "name(descriptor)", e.g. "check([BSB)Z"; static and virtual alike. */
  methods: Record<string, NativeMethod>;
  /** Static final fields that are objects or not compile-time constants (rare in the API). */
  statics?: Record<string, (vm: Vm) => number>;
}

/** JCRE per-command state shared with the framework natives (APDU class, Applet.selectingApplet, channels). */
export interface JcreState {
  /** The APDU buffer (global byte array, at least 261 bytes; larger with extended length). */
  apduBuffer: Ref;
  /** The APDU object (a temporary JCRE entry point). */
  apduObject: Ref;
  /** Command bytes as received; APDU state machine per javacard.framework.APDU (STATE_INITIAL …). */
  command: Uint8Array;
  state: number;
  /** Incoming data bytes already received into the buffer, and expected (Lc / extended Lc). */
  lc: number;
  received: number;
  /** Le from the command (Ne), outgoing length set by setOutgoingLength, bytes sent so far, the response being built. */
  le: number;
  outgoingLength: number;
  sent: number;
  response: Uint8Array[];
  selecting: boolean;
  channel: number;
  /** Applet AID selected on this channel (the command's target). */
  selectedApplet: string;
  extended: boolean;
  /** Set by the JCRE for JCSystem.isAppletActive etc. */
  activeApplets: ReadonlySet<string>;
  // (H4) Optional APDU/JCRE details; absent = the defaults documented in api/apdu.ts.
  /** setOutgoingNoChaining was used for this command (the APDU natives set it; api/apdu.ts beginCommand resets it). */
  noChaining?: boolean;
  /** The selected applet implements javacardx.apdu.ExtendedLength (lengths > 256 allowed). */
  extendedLengthApplet?: boolean;
  /** APDU.getInBlockSize / getOutBlockSize / getProtocol (defaults 254, 254, PROTOCOL_T1). */
  inBlockSize?: number;
  outBlockSize?: number;
  protocol?: number;
  /** Applet.reSelectingApplet: the applet is being selected again on the same channel. */
  reselecting?: boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Cycle model (data, not code): a chip's clock and per-operation costs. One profile per chip model.
// ---------------------------------------------------------------------------------------------------------------

export interface CycleProfile {
  name: string;
  /** CPU clock in Hz: estimated time = cycles / clockHz. */
  clockHz: number;
  /** Cycles per instruction cost class (see opcodes.ts CostClass), and per-opcode overrides by mnemonic. */
  opcodeCycles: Record<string, number>;
  opcodeOverrides?: Record<string, number>;
  /** Extra cycles for each method invocation (frame setup) and each native API call. */
  invokeCycles: number;
  nativeCallCycles: number;
  /** Persistent memory: cycles per byte written, per page touched, page size in bytes; transaction logging overhead per byte. */
  nvmWriteByteCycles: number;
  nvmPageCycles: number;
  nvmPageBytes: number;
  transactionByteCycles: number;
  ramWriteByteCycles: number;
  /** H6: extra cycles per byte when a copy reads persistent memory into persistent memory (Util.arrayCopy NVM→NVM). */
  nvmCopySourceByteCycles?: number;
  /** Crypto costs: fixed cycles per call + cycles per input byte, by operation key, e.g. "RSA-2048-CRT/sign",
   *  "SHA-256/digest", "AES-128/CBC", "EC-256/sign", "RSA-2048/keygen". */
  crypto: Record<string, { fixed: number; perByte: number }>;
  /** Transmission: bytes per second on the contact interface (T=1 at the profile's rate) and per-APDU overhead in µs. */
  ioBytesPerSecond: number;
  ioApduOverheadUs: number;
  /** How each number was obtained (sources, arithmetic); shown in docs. */
  derivation: Record<string, string>;
}

export interface CycleReport {
  bytecodes: number;
  cycles: number;
  nativeCalls: number;
  persistentBytesWritten: number;
  /** Estimated time on the chip: execution (cycles/clock) plus transmission. */
  estimatedUs: number;
  ioBytes: number;
}

export interface CycleMeter {
  readonly profile: CycleProfile;
  /** Charges cycles for a crypto operation by key ("SHA-256/digest") with n input bytes; unknown keys cost `fallback`. */
  crypto(op: string, bytes: number): void;
  charge(cycles: number): void;
  nvmWrite(bytes: number, pages: number): void;
  ramWrite(bytes: number): void;
  native(): void;
  /** Counters since the last reset (one APDU). */
  report(): CycleReport;
  reset(): void;
}

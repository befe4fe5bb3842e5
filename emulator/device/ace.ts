// The phone's Access Control Enforcer (GP SEAC 1.1; Android OMAPI SecureElementService): opens logical channels to
// SE applications for device applications only when the ARA-M's rules allow it, and filters what they send.
import { createHash } from 'node:crypto';
import { decodeCla, encodeCla, encodeCommand, parseCommand } from '../apdu.ts';
import { concat, equal, fromHex, hex } from '../bytes.ts';
import { swHex } from '../iso.ts';
import type { AccessRule, AppIdentity, Decision, SeTarget } from './ara-rules.ts';
import { allRulesSize, apduAllowed, decide, describeApdu, evaluateRules, parseAllRules } from './ara-rules.ts';

export const ARA_M_AID = fromHex('A00000015141434C00');

/** Raw APDU exchange with the SE on its basic channel (a Target's or a chip's transmit). */
export type Transmit = (apdu: Uint8Array) => Promise<Uint8Array>;

/** The device application: DER of each of its signing certificates (the ACE hashes them). */
export interface Caller {
  certificates: Uint8Array[];
}

export interface SeChannel {
  readonly number: number;
  /** The SELECT answer, data and status word (OMAPI Channel.getSelectResponse); empty for the default applet. */
  readonly selectResponse: Uint8Array;
  /** The access decision the channel was opened under; its APDU rule filters transmit. */
  readonly access: Decision;
  readonly closed: boolean;
  /** Sends one command on this channel (channel bits set here) and returns data + SW, GET RESPONSE parts joined. */
  transmit(apdu: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Counters since createAce, for tests and diagnostics. */
export interface AceStats {
  /** Channels handed to callers. */
  opened: number;
  /** openLogicalChannel calls refused with a SecurityError. */
  denied: number;
  /** GET DATA [refresh tag] exchanges with the ARA-M. */
  refreshTagReads: number;
  /** Refresh tag unchanged: the cached rules were used. */
  cacheHits: number;
  /** GET DATA [all] exchanges (a full rule read). */
  ruleReads: number;
  /** GET DATA [next] exchanges. */
  nextReads: number;
  /** SELECT ARA-M answered 6A82. */
  araMissing: number;
}

export interface Ace {
  /** MANAGE CHANNEL + SELECT `aid` (empty: the default applet, no SELECT) when the rules let `caller` in. */
  openLogicalChannel(aid: Uint8Array, caller: Caller): Promise<SeChannel>;
  /** The decision for `caller` on `aid` under the current rules, opening nothing but the ARA-M channel. */
  access(aid: Uint8Array, caller: Caller): Promise<Decision>;
  /** Whether the SE application may send NFC events (transaction intents) to `caller` (SEAC NFC-AR-DO). */
  nfcEventAllowed(aid: Uint8Array, caller: Caller): Promise<boolean>;
  stats(): AceStats;
  /** Forgets the cached rules and refresh tag (Android does so when the SE is reset or removed). */
  reset(): void;
}

export interface AceOptions {
  araAid?: Uint8Array;
  log?: (message: string) => void;
}

/** Access refused (Android's SecurityException); `decision` tells which rule, when a rule decided. */
export class SecurityError extends Error {
  readonly decision: Decision | undefined;
  constructor(message: string, decision?: Decision, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SecurityError';
    this.decision = decision;
  }
}

/** The SE could not do what was asked: OMAPI's NoSuchElementException, MissingResourceException, IOException, … */
export type SeErrorKind = 'no-such-element' | 'no-channel' | 'io' | 'illegal-state' | 'illegal-argument';

export class SeError extends Error {
  readonly kind: SeErrorKind;
  readonly sw: number | undefined;
  constructor(kind: SeErrorKind, message: string, sw?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SeError';
    this.kind = kind;
    this.sw = sw;
  }
}

/** SHA-256 and SHA-1 of each signing certificate: the DeviceAppID hashes a rule may name. */
export function appIdentity(caller: Caller): AppIdentity {
  if (!caller || !Array.isArray(caller.certificates) || !caller.certificates.every((c) => c instanceof Uint8Array))
    throw new SeError('illegal-argument', 'caller.certificates must be an array of DER certificates (Uint8Array)');
  const digest = (alg: string, der: Uint8Array) => new Uint8Array(createHash(alg).update(der).digest());
  return { sha256: caller.certificates.map((c) => digest('sha256', c)), sha1: caller.certificates.map((c) => digest('sha1', c)) };
}

const sw = (r: Uint8Array): number => (r[r.length - 2] << 8) | r[r.length - 1];
const dataOf = (r: Uint8Array): Uint8Array => r.subarray(0, r.length - 2);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
/** SELECT succeeded, possibly with a warning (OMAPI accepts 62xx/63xx). */
const selected = (s: number): boolean => s === 0x9000 || s >> 8 === 0x62 || s >> 8 === 0x63;

/** Class byte of the app's command moved to channel `n`, keeping class, SM and chaining (like AOSP setChannelToClassByte). */
export function claForChannel(cla: number, n: number): number {
  const c = decodeCla(cla);
  if (!c) throw new SeError('illegal-argument', `class byte ${hex(Uint8Array.of(cla))} is not valid`);
  const prop = cla & 0x80;
  const chain = cla & 0x10;
  // SM bits b4..b3 of the first interindustry coding; further coding has one flag (b6), read as "header not processed".
  const sm = !c.further ? cla & 0x0c : c.sm === 'none' ? 0 : prop ? 0x04 : 0x08;
  if (n < 4) return prop | chain | sm | n;
  return encodeCla(n, { proprietary: prop !== 0, sm: sm !== 0, chaining: chain !== 0 });
}

/** Runs async jobs one after another: a command and its GET RESPONSE parts must not interleave with others. */
function serial(): <T>(job: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(job: () => Promise<T>) => {
    const run = tail.then(job, job);
    tail = run.catch(() => undefined);
    return run;
  };
}

export function createAce(transmit: Transmit, opts: AceOptions = {}): Ace {
  const araAid = opts.araAid ?? ARA_M_AID;
  const log = opts.log ?? (() => {});
  const counts: AceStats = { opened: 0, denied: 0, refreshTagReads: 0, cacheHits: 0, ruleReads: 0, nextReads: 0, araMissing: 0 };
  let cache: { tag: Uint8Array; rules: AccessRule[] } | undefined;
  const io = serial();
  const rulesLock = serial();

  async function raw(cmd: Uint8Array): Promise<Uint8Array> {
    let r: Uint8Array;
    try {
      r = await transmit(cmd);
    } catch (e) {
      throw new SeError('io', `transmit failed: ${message(e)}`, undefined, { cause: e });
    }
    if (r.length < 2) throw new SeError('io', `the SE answered ${r.length} byte(s), not even a status word`);
    return r;
  }

  /** One command, with the 6Cxx retry and 61xx GET RESPONSE loop a terminal does (ISO 7816-3/-4; AOSP Terminal.transmit). */
  function exchange(cmd: Uint8Array): Promise<Uint8Array> {
    return io(async () => {
      let r = await raw(cmd);
      if (r[r.length - 2] === 0x6c) {
        const c = parseCommand(cmd);
        if (c.ne) r = await raw(encodeCommand({ ...c, ne: r[r.length - 1] || 256 }));
      }
      const channel = decodeCla(cmd[0])?.channel ?? 0;
      const parts: Uint8Array[] = [];
      for (let n = 0; r[r.length - 2] === 0x61; n++) {
        if (n >= 256) throw new SeError('io', 'the SE keeps answering 61xx');
        parts.push(dataOf(r));
        r = await raw(Uint8Array.of(encodeCla(channel), 0xc0, 0x00, 0x00, r[r.length - 1]));
      }
      return parts.length ? concat(...parts, r) : r;
    });
  }

  async function openChannel(): Promise<number> {
    const r = await exchange(Uint8Array.of(0x00, 0x70, 0x00, 0x00, 0x01));
    if (sw(r) !== 0x9000 || r.length !== 3) throw new SeError('no-channel', `MANAGE CHANNEL open answered ${swHex(sw(r))}`, sw(r));
    return r[0];
  }

  async function closeChannel(n: number): Promise<void> {
    const r = await exchange(Uint8Array.of(encodeCla(n), 0x70, 0x80, n));
    if (sw(r) !== 0x9000) log(`ace: MANAGE CHANNEL close ${n} answered ${swHex(sw(r))}`);
  }

  const select = (n: number, aid: Uint8Array) => exchange(encodeCommand({ cla: encodeCla(n), ins: 0xa4, p1: 0x04, p2: 0x00, data: aid, ne: 256 }));
  const getData = (n: number, tag: number) => exchange(Uint8Array.of(encodeCla(n, { proprietary: true }), 0xca, tag >> 8, tag & 0xff, 0x00));

  /** All rules of the ARA-M (SEAC GET DATA [all] + [next]); 6A88 = no rules stored. */
  async function readAll(n: number): Promise<AccessRule[]> {
    counts.ruleReads++;
    const first = await getData(n, 0xff40);
    if (sw(first) === 0x6a88) return [];
    if (sw(first) !== 0x9000) throw new SecurityError(`ARA-M GET DATA [all] answered ${swHex(sw(first))}`);
    let data = dataOf(first);
    const size = allRulesSize(data);
    while (data.length < size) {
      counts.nextReads++;
      const next = await getData(n, 0xff60);
      if (sw(next) !== 0x9000 || next.length === 2)
        throw new SecurityError(`ARA-M GET DATA [next] answered ${swHex(sw(next))} after ${data.length} of ${size} bytes`);
      data = concat(data, dataOf(next));
    }
    return parseAllRules(data);
  }

  /**
   * The ARA-M's rules, or undefined when the SE has none. Its own logical channel each time: the refresh tag first;
   * unchanged since the last full read → the cache. The tag is remembered only once the rules parsed.
   */
  function currentRules(): Promise<AccessRule[] | undefined> {
    return rulesLock(async () => {
      const n = await openChannel();
      try {
        const s = sw(await select(n, araAid));
        if (s === 0x6a82) {
          counts.araMissing++;
          cache = undefined;
          return undefined;
        }
        if (!selected(s)) throw new SecurityError(`SELECT ARA-M answered ${swHex(s)}`);
        counts.refreshTagReads++;
        const t = await getData(n, 0xdf20);
        const v = dataOf(t);
        if (sw(t) !== 0x9000 || v.length !== 11 || v[0] !== 0xdf || v[1] !== 0x20 || v[2] !== 0x08)
          throw new SecurityError(`ARA-M refresh tag answer ${hex(t)} is not DF20 08 <8 bytes> 9000`);
        const tag = v.slice(3);
        if (cache && equal(cache.tag, tag)) {
          counts.cacheHits++;
          return cache.rules;
        }
        cache = undefined;
        const rules = await readAll(n);
        cache = { tag, rules };
        log(`ace: ${rules.length} rule(s) read from the ARA-M, refresh tag ${hex(tag)}`);
        return rules;
      } finally {
        await closeChannel(n);
      }
    });
  }

  function checkAid(aid: Uint8Array): SeTarget {
    if (!(aid instanceof Uint8Array)) throw new SeError('illegal-argument', 'aid must be a Uint8Array');
    if (aid.length !== 0 && (aid.length < 5 || aid.length > 16)) throw new SeError('illegal-argument', `AID of ${aid.length} bytes (must be 5..16, or empty for the default applet)`);
    return aid.length ? aid.slice() : 'default';
  }

  async function access(aid: Uint8Array, caller: Caller): Promise<Decision> {
    const target = checkAid(aid);
    const app = appIdentity(caller);
    let rules: AccessRule[] | undefined;
    try {
      rules = await currentRules();
    } catch (e) {
      if (e instanceof SeError || e instanceof SecurityError) throw e;
      throw new SecurityError(`access rules could not be read: ${message(e)}`, undefined, { cause: e });
    }
    if (!rules) return decide('no-ara-m', []);
    return evaluateRules(rules, target, app);
  }

  function refusal(aid: Uint8Array, d: Decision): string {
    const who = aid.length ? hex(aid) : 'the default applet';
    const why: Record<string, string> = {
      'no-ara-m': `the SE has no ARA-M (${hex(araAid)}), so no application gets access`,
      'no-rule': 'no access rule applies to this application',
      'aid-other-app': 'the rules for this AID name other applications only',
      'all-aids-other-app': 'the rules for all AIDs name other applications only',
    };
    return `access to ${who} denied: ${why[d.reason] ?? `the ${d.reason} rule grants no APDU access`}`;
  }

  function channel(n: number, selectResponse: Uint8Array, decision: Decision): SeChannel {
    let closed = false;
    return {
      number: n,
      selectResponse,
      access: decision,
      get closed() {
        return closed;
      },
      async transmit(apdu: Uint8Array): Promise<Uint8Array> {
        if (closed) throw new SeError('illegal-state', `channel ${n} is closed`);
        if (!(apdu instanceof Uint8Array)) throw new SeError('illegal-argument', 'the command must be a Uint8Array');
        let c;
        try {
          c = parseCommand(apdu);
        } catch (e) {
          throw new SeError('illegal-argument', `malformed command APDU: ${message(e)}`, undefined, { cause: e });
        }
        const cla = decodeCla(c.cla);
        if (!cla) throw new SeError('illegal-argument', `class byte ${hex(apdu.subarray(0, 1))} is not valid`);
        // OMAPI: channel management belongs to the service, never to the app (Channel.transmit).
        if (cla.interindustry && c.ins === 0x70) throw new SecurityError('MANAGE CHANNEL is not allowed through transmit', decision);
        if (cla.interindustry && c.ins === 0xa4 && c.p1 === 0x04) throw new SecurityError('SELECT by DF name is not allowed through transmit', decision);
        if (!apduAllowed(decision.apdu, apdu))
          throw new SecurityError(`command ${hex(apdu.subarray(0, 4))} is not allowed by the access rule (${describeApdu(decision.apdu)})`, decision);
        const out = apdu.slice();
        out[0] = claForChannel(c.cla, n);
        return exchange(out);
      },
      async close(): Promise<void> {
        if (closed) return;
        closed = true;
        await closeChannel(n);
      },
    };
  }

  async function openLogicalChannel(aid: Uint8Array, caller: Caller): Promise<SeChannel> {
    let decision: Decision;
    try {
      decision = await access(aid, caller);
    } catch (e) {
      if (e instanceof SecurityError) counts.denied++;
      throw e;
    }
    if (decision.apdu.kind === 'never') {
      counts.denied++;
      throw new SecurityError(refusal(aid, decision), decision);
    }
    const n = await openChannel();
    let selectResponse: Uint8Array = new Uint8Array(0);
    if (aid.length) {
      let r: Uint8Array;
      try {
        r = await select(n, aid);
      } catch (e) {
        await closeChannel(n).catch(() => undefined);
        throw e;
      }
      if (!selected(sw(r))) {
        await closeChannel(n);
        const kind = sw(r) === 0x6a82 ? 'no-such-element' : 'io';
        throw new SeError(kind, `SELECT ${hex(aid)} answered ${swHex(sw(r))}`, sw(r));
      }
      selectResponse = r;
    }
    counts.opened++;
    return channel(n, selectResponse, decision);
  }

  return {
    openLogicalChannel,
    access,
    async nfcEventAllowed(aid, caller) {
      return (await access(aid, caller)).nfc;
    },
    stats: () => ({ ...counts }),
    reset() {
      cache = undefined;
    },
  };
}

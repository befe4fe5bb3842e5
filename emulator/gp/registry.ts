// The GP registry (GPCS 2.3.1 §6.4? Registry; Table 11-36 fields) and the card-wide state, kept in the chip store.
import type { ChipStore } from '../store.ts';
import type { ChipProfile } from '../profile.ts';
import { hex } from '../bytes.ts';
import { API_PACKAGES, AppLife, CardLife, ElfLife, Priv, SdLife } from './constants.ts';

export interface PackageRefHex {
  aid: string;
  major: number;
  minor: number;
}

/** Executable Load File: a loaded CAP package (or a native one shipped with the chip). */
export interface ElfEntry {
  aid: string;
  lifeCycle: number;
  /** Associated security domain. */
  sd: string;
  version: [number, number];
  /** Executable Module AIDs (the applet classes of the package). */
  modules: string[];
  imports: PackageRefHex[];
  /** Native: part of the chip's image (API packages, the SD package); cannot be deleted. */
  native: boolean;
  /** Bytes of persistent memory the load file occupies. */
  size: number;
}

/** Application or security domain instance. */
export interface AppEntry {
  aid: string;
  lifeCycle: number;
  privileges: number;
  /** Associated security domain (the ISD is associated with itself). */
  sd: string;
  elf: string;
  module: string;
  isSd: boolean;
  /** Application-specific install parameters (C9 value), hex. */
  params: string;
  /** SCP03 "i" parameter of a security domain, when it differs from the chip profile's. */
  scpI?: number;
}

export interface CardState {
  /** Name of the chip profile the chip was made with; fixed for the chip's life. */
  profile?: string;
  lifeCycle: number;
  iin: string;
  cin: string;
  sdUrl?: string;
  /** AID of the application implicitly selected on channel 0 after reset (Card Reset privilege holder). */
  defaultSelected: string;
}

export interface KeyEntry {
  id: number;
  /** Key type (GPCS Table 11-16): 88 = AES. */
  type: number;
  value: string;
}

export interface KeySetRecord {
  kvn: number;
  keys: KeyEntry[];
  /** SCP03 sequence counter for the pseudo-random card challenge (Amd D §6.2.2.1). */
  seq: number;
}

export interface Registry {
  elfs: ElfEntry[];
  apps: AppEntry[];
}

export interface Model {
  card: CardState;
  registry: Registry;
  /** Key sets by security-domain AID. */
  keys: Map<string, KeySetRecord[]>;
}

const K_CARD = 'gp/card';
const K_REGISTRY = 'gp/registry';
const K_KEYS = 'gp/keys/';
export const K_LOAD_FILE = 'gp/lf/';

export const SD_PACKAGE_AID = 'A0000001515350';
export const SD_MODULE_AID = 'A000000151535041';

export const ISD_PRIVILEGES =
  Priv.SECURITY_DOMAIN |
  Priv.CARD_LOCK |
  Priv.CARD_TERMINATE |
  Priv.CARD_RESET |
  Priv.CVM_MANAGEMENT |
  Priv.TRUSTED_PATH |
  Priv.AUTHORIZED_MANAGEMENT |
  Priv.GLOBAL_DELETE |
  Priv.GLOBAL_LOCK |
  Priv.GLOBAL_REGISTRY;

/** The profile name a stored chip was made with (undefined for a new store). */
export function storedProfileName(store: ChipStore): string | undefined {
  return store.getJson<CardState>(K_CARD)?.profile;
}

/** True when the store holds a chip (created earlier). */
export function hasChip(store: ChipStore): boolean {
  return store.has(K_CARD);
}

/** Writes the factory state of a new chip: ISD with the initial key set, native packages, card life cycle. */
export function createChipState(store: ChipStore, profile: ChipProfile): void {
  const isd = hex(profile.isdAid);
  const key = hex(profile.initialKey);
  const model: Model = {
    card: { profile: profile.name, lifeCycle: profile.initialLifeCycle, iin: hex(profile.iin), cin: hex(profile.cin), defaultSelected: isd },
    registry: {
      elfs: [
        ...API_PACKAGES.map((p) => nativeElf(p.aid, isd, [p.major, p.minor], [])),
        nativeElf(SD_PACKAGE_AID, isd, [1, 0], [SD_MODULE_AID]),
      ],
      apps: [
        {
          aid: isd,
          lifeCycle: SdLife.PERSONALIZED,
          privileges: ISD_PRIVILEGES,
          sd: isd,
          elf: SD_PACKAGE_AID,
          module: SD_MODULE_AID,
          isSd: true,
          params: '',
        },
      ],
    },
    keys: new Map([[isd, [newKeySet(profile.initialKvn, key, key, key)]]]),
  };
  store.begin();
  saveCard(store, model);
  saveRegistry(store, model);
  saveKeys(store, model, isd);
  store.commit();
}

function nativeElf(aid: string, sd: string, version: [number, number], modules: string[]): ElfEntry {
  return { aid, lifeCycle: ElfLife.LOADED, sd, version, modules, imports: [], native: true, size: 0 };
}

export function newKeySet(kvn: number, enc: string, mac: string, dek: string): KeySetRecord {
  return {
    kvn,
    seq: 0,
    keys: [
      { id: 1, type: 0x88, value: enc },
      { id: 2, type: 0x88, value: mac },
      { id: 3, type: 0x88, value: dek },
    ],
  };
}

export function loadModel(store: ChipStore): Model {
  const card = store.getJson<CardState>(K_CARD);
  const registry = store.getJson<Registry>(K_REGISTRY);
  if (!card || !registry) throw new Error('chip state has no GlobalPlatform registry');
  const keys = new Map<string, KeySetRecord[]>();
  for (const k of store.keys(K_KEYS)) keys.set(k.slice(K_KEYS.length), store.getJson<KeySetRecord[]>(k) ?? []);
  return { card, registry, keys };
}

export function saveCard(store: ChipStore, m: Model): void {
  store.putJson(K_CARD, m.card);
}

export function saveRegistry(store: ChipStore, m: Model): void {
  store.putJson(K_REGISTRY, m.registry);
}

export function saveKeys(store: ChipStore, m: Model, sd: string): void {
  const sets = m.keys.get(sd);
  if (sets && sets.length) store.putJson(K_KEYS + sd, sets);
  else if (store.has(K_KEYS + sd)) store.delete(K_KEYS + sd);
}

export function findApp(m: Model, aid: string): AppEntry | undefined {
  return m.registry.apps.find((a) => a.aid === aid);
}

export function findElf(m: Model, aid: string): ElfEntry | undefined {
  return m.registry.elfs.find((e) => e.aid === aid);
}

export function isdAid(m: Model): string {
  return m.registry.apps[0].aid;
}

export function isSelectableState(app: AppEntry): boolean {
  if (app.lifeCycle & AppLife.LOCKED_BIT) return false;
  return (app.lifeCycle & 0x07) === 0x07; // SELECTABLE, PERSONALIZED or an application-specific state (b3..b1 = 111)
}

/** Persistent bytes in use by load files (what GET DATA FF21 and 6A84 checks see). */
export function usedPersistent(m: Model): number {
  return m.registry.elfs.reduce((n, e) => n + e.size, 0);
}

export function cardIs(m: Model, ...states: number[]): boolean {
  return states.includes(m.card.lifeCycle);
}

export { CardLife };

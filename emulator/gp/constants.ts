// GlobalPlatform Card Specification 2.3.1 codes: life cycles (Tables 11-3..11-6) and privileges (Tables 11-7..11-9).

export const CardLife = {
  OP_READY: 0x01,
  INITIALIZED: 0x07,
  SECURED: 0x0f,
  CARD_LOCKED: 0x7f,
  TERMINATED: 0xff,
} as const;

export const AppLife = { INSTALLED: 0x03, SELECTABLE: 0x07, LOCKED_BIT: 0x80 } as const;
export const SdLife = { INSTALLED: 0x03, SELECTABLE: 0x07, PERSONALIZED: 0x0f } as const;
export const ElfLife = { LOADED: 0x01 } as const;

/** Privileges as a 24-bit number: byte 1 in bits 23..16, byte 2 in 15..8, byte 3 in 7..0. */
export const Priv = {
  SECURITY_DOMAIN: 0x800000,
  DAP_VERIFICATION: 0x400000, // coded with SECURITY_DOMAIN: C0
  DELEGATED_MANAGEMENT: 0x200000, // A0
  CARD_LOCK: 0x100000,
  CARD_TERMINATE: 0x080000,
  CARD_RESET: 0x040000, // "default selected" in GP 2.1.1 terms
  CVM_MANAGEMENT: 0x020000,
  MANDATED_DAP: 0x010000, // C1 with SD and DAP
  TRUSTED_PATH: 0x008000,
  AUTHORIZED_MANAGEMENT: 0x004000,
  TOKEN_VERIFICATION: 0x002000,
  GLOBAL_DELETE: 0x001000,
  GLOBAL_LOCK: 0x000800,
  GLOBAL_REGISTRY: 0x000400,
  FINAL_APPLICATION: 0x000200,
  GLOBAL_SERVICE: 0x000100,
  RECEIPT_GENERATION: 0x000080,
  CIPHERED_LFDB: 0x000040,
  CONTACTLESS_ACTIVATION: 0x000020,
  CONTACTLESS_SELF_ACTIVATION: 0x000010,
} as const;

export const PRIV_NAMES: [number, string][] = Object.entries(Priv).map(([k, v]) => [v, k]);

/** Privileges only a security domain may hold (GPCS §6.6.1). */
export const SD_ONLY_PRIVS =
  Priv.DAP_VERIFICATION |
  Priv.DELEGATED_MANAGEMENT |
  Priv.MANDATED_DAP |
  Priv.AUTHORIZED_MANAGEMENT |
  Priv.TOKEN_VERIFICATION |
  Priv.RECEIPT_GENERATION |
  Priv.CIPHERED_LFDB |
  Priv.TRUSTED_PATH;

export function privilegeNames(p: number): string[] {
  return PRIV_NAMES.filter(([bit]) => (p & bit) !== 0).map(([, n]) => n);
}

/** Decodes the privileges field of INSTALL: 1 byte (GP 2.1.1 style) or 3 bytes (GPCS 2.3.1 §11.1.2). */
export function decodePrivileges(field: Uint8Array): number | undefined {
  if (field.length === 1) return field[0] << 16;
  if (field.length === 3) return (field[0] << 16) | (field[1] << 8) | field[2];
  return undefined;
}

export function encodePrivileges(p: number): Uint8Array {
  return Uint8Array.of((p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff);
}

export function cardLifeName(s: number): string {
  const hit = Object.entries(CardLife).find(([, v]) => v === s);
  return hit ? hit[0] : `0x${s.toString(16)}`;
}

export function appLifeName(s: number, isSd: boolean): string {
  const locked = (s & 0x80) !== 0;
  const base = s & 0x7f;
  let name: string;
  if (base === 0x03) name = 'INSTALLED';
  else if (base === 0x07) name = 'SELECTABLE';
  else if (isSd && base === 0x0f) name = 'PERSONALIZED';
  else if ((base & 0x07) === 0x07) name = `APP_SPECIFIC(${hex2(base)})`;
  else name = hex2(base);
  return locked ? `LOCKED(${name})` : name;
}

function hex2(n: number): string {
  return n.toString(16).toUpperCase().padStart(2, '0');
}

/** The standard Java Card API packages every chip carries natively (javacard.md §2.3), with the versions it offers. */
export const API_PACKAGES: { aid: string; name: string; major: number; minor: number }[] = [
  { aid: 'A0000000620001', name: 'java.lang', major: 1, minor: 0 },
  { aid: 'A0000000620002', name: 'java.io', major: 1, minor: 0 },
  { aid: 'A0000000620003', name: 'java.rmi', major: 1, minor: 0 },
  { aid: 'A0000000620101', name: 'javacard.framework', major: 1, minor: 6 },
  { aid: 'A0000000620102', name: 'javacard.security', major: 1, minor: 6 },
  { aid: 'A0000000620201', name: 'javacardx.crypto', major: 1, minor: 6 },
  { aid: 'A0000000620209', name: 'javacardx.apdu', major: 1, minor: 0 },
  { aid: 'A00000015100', name: 'org.globalplatform', major: 1, minor: 6 },
];

// The person a test card or phone is issued to: one record that feeds the certificates (emulator/personalise/test-ca.ts)
// and the card's text AP (emulator/host/textap-perso.ts). The default citizen is fictional.
import type { Holder } from './test-ca.ts';
import type { Attributes, Sex } from '../host/textap-perso.ts';
import { attributeFields, myNumberCheckDigit } from '../host/textap-perso.ts';

export interface Citizen {
  /** 氏名: family and given name separated by U+3000. */
  name: string;
  nameKana?: string;
  /** 住所, prefecture first. */
  address: string;
  /** 生年月日, Gregorian YYYYMMDD. */
  birth: string;
  sex: Sex;
  /** 個人番号: 12 digits with a valid check digit. */
  myNumber: string;
}

/** The 12-digit 個人番号 from its first 11 digits (JIS X 0401-style check digit, as the text AP's host module checks). */
export function withCheckDigit(first11: string): string {
  return first11 + String(myNumberCheckDigit(first11));
}

/** A fictional citizen (試験 = "test"); the address is the Digital Agency's building, no person's home. */
export const TEST_CITIZEN: Citizen = {
  name: '試験\u3000花子',
  nameKana: 'シケン\u3000ハナコ',
  address: '東京都千代田区紀尾井町一丁目三番',
  birth: '19800217',
  sex: '2',
  myNumber: withCheckDigit('12345678901'),
};

/** The certificate holder record of a citizen. */
export function holderOf(c: Citizen): Holder {
  // The text AP codes "not known" as 9 (ISO/IEC 5218); the certificate profile's reader takes 'unknown'.
  return { name: c.name, nameKana: c.nameKana, birth: c.birth, sex: c.sex === '9' ? 'unknown' : c.sex, address: c.address };
}

/** The text AP's four attributes of a citizen. */
export function attributesOf(c: Citizen): Attributes {
  return { name: c.name, address: c.address, birth: c.birth, sex: c.sex };
}

export type CitizenField = 'name' | 'address' | 'birth' | 'sex' | 'myNumber';

/** What is wrong with one field; `message` reads after the value ("… is not a calendar date"). */
export interface CitizenProblem {
  field: CitizenField;
  message: string;
}

/** JPKI issues sign certificates from this age on (test-ca.ts refuses younger holders). */
export const MIN_AGE = 15;
/** First day of Meiji as 照合番号B counts era years (emulator/host/textap-perso.ts): no earlier birth can be coded. */
const FIRST_BIRTH = '18680125';
const MAX_ADDRESS_CHARS = 200;

/** Today in Japan as YYYYMMDD (certificates and ages are reckoned in JST). */
function jstToday(now: Date): string {
  return new Date(now.getTime() + 9 * 3600_000).toISOString().slice(0, 10).replace(/-/g, '');
}

function isCalendarDate(s: string): boolean {
  if (!/^[0-9]{8}$/.test(s)) return false;
  const [y, m, d] = [Number(s.slice(0, 4)), Number(s.slice(4, 6)), Number(s.slice(6))];
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 && t.getUTCDate() === d;
}

const wellFormed = (s: string): boolean => new TextDecoder().decode(new TextEncoder().encode(s)) === s;

/**
 * The first field of `c` that the certificates (both profiles) or, with `textAp`, the card's text AP could not carry;
 * undefined when every field fits. Checked before a helper sends its first APDU, so a bad record leaves the chip as it was.
 */
export function citizenProblem(c: Citizen, opts: { textAp: boolean; now?: Date }): CitizenProblem | undefined {
  const now = opts.now ?? new Date();
  for (const field of ['name', 'address'] as const) {
    if (typeof c[field] !== 'string' || c[field].length === 0) return { field, message: 'is empty' };
    if (!wellFormed(c[field])) return { field, message: 'is not well-formed Unicode (lone surrogate)' };
  }
  const chars = [...c.address].length;
  if (chars > MAX_ADDRESS_CHARS) return { field: 'address', message: `has ${chars} characters; the sign certificate holds at most ${MAX_ADDRESS_CHARS}` };
  if (!isCalendarDate(c.birth)) return { field: 'birth', message: 'is not a calendar date YYYYMMDD' };
  if (c.birth < FIRST_BIRTH) return { field: 'birth', message: `predates ${FIRST_BIRTH}, the first day the card's era-year coding knows` };
  const today = jstToday(now);
  const age = Number(today.slice(0, 4)) - Number(c.birth.slice(0, 4)) - (today.slice(4) < c.birth.slice(4) ? 1 : 0);
  if (age < MIN_AGE) return { field: 'birth', message: `makes the holder ${Math.max(age, 0)} on ${today}; JPKI sign certificates need ${MIN_AGE} or older` };
  if (c.sex !== '1' && c.sex !== '2' && c.sex !== '9') return { field: 'sex', message: 'is not 1 (male), 2 (female) or 9 (not applicable)' };
  if (!opts.textAp) return undefined;
  if (typeof c.myNumber !== 'string' || !/^[0-9]{12}$/.test(c.myNumber)) return { field: 'myNumber', message: 'is not 12 digits' };
  const check = String(myNumberCheckDigit(c.myNumber.slice(0, 11)));
  if (c.myNumber[11] !== check) return { field: 'myNumber', message: `ends in ${c.myNumber[11]}, but its check digit is ${check}` };
  try {
    attributeFields(attributesOf(c));
  } catch (e) {
    // Name and address share EF 0002: blame the longer of the two.
    const field = new TextEncoder().encode(c.address).length >= new TextEncoder().encode(c.name).length ? 'address' : 'name';
    return { field, message: `does not fit the text AP (${e instanceof Error ? e.message : String(e)})` };
  }
  return undefined;
}

/** Throws a RangeError naming the field and value when citizenProblem finds something. */
export function checkCitizen(c: Citizen, opts: { textAp: boolean; now?: Date }): void {
  const p = citizenProblem(c, opts);
  if (p) throw new RangeError(`citizen ${p.field} "${String(c[p.field])}" ${p.message}`);
}

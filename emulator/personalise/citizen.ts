// The person a test card or phone is issued to: one record that feeds the certificates (emulator/personalise/test-ca.ts)
// and the card's text AP (emulator/host/textap-perso.ts). The default citizen is fictional.
import type { Holder } from './test-ca.ts';
import type { Attributes, Sex } from '../host/textap-perso.ts';
import { myNumberCheckDigit } from '../host/textap-perso.ts';

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

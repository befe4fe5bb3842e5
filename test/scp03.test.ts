// SCP03 (GPC 2.2 Amendment D) as pure functions: every public vector of /work/shared/reference/scp03.md, then the
// protocol rules (levels, chaining, counters, logical channels, S16) and the failures, host and card side.
import { describe, it, expect } from 'vitest';
import { createCipheriv } from 'node:crypto';
import { concat, fromHex, hex, pad80, uint } from '../emulator/bytes.ts';
import { aesCmac } from '../emulator/aes.ts';
import { encodeCommand, parseCommand } from '../emulator/apdu.ts';
import type { CommandApdu } from '../emulator/apdu.ts';
import { IsoError } from '../emulator/iso.ts';
import {
  Derivation,
  Scp03Error,
  cardExternalAuthenticate,
  cardInitializeUpdate,
  cardUnwrap,
  cardWrap,
  decryptKeyData,
  deriveSessionKeys,
  encryptKeyData,
  hostAuthenticate,
  hostInitializeUpdate,
  hostUnwrap,
  hostWrap,
  iOptions,
  isValidLevel,
  kcv,
  kdf,
  openSecureChannel,
  pseudoRandomChallenge,
} from '../emulator/scp03.ts';
import type { KeySet, PendingSession, Session } from '../emulator/scp03.ts';

const ISD = fromHex('A000000151000000');
const ISD_R = fromHex('A0000005591010FFFFFFFF8900000100');
const KDD0 = new Uint8Array(10);
const SW_OK = fromHex('9000');

const cmd = (h: string): CommandApdu => parseCommand(fromHex(h));
const same = (k: Uint8Array): KeySet => ({ enc: k, mac: k, dek: k });
const fill = (n: number, b: number) => new Uint8Array(n).fill(b);

/** The status word a call dies with, or a note that it did not throw an IsoError. */
function swOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof IsoError) return e.sw.toString(16).toUpperCase();
    return `not an IsoError: ${String(e)}`;
  }
  return 'no error';
}

/** Independent AES-CBC (fresh node:crypto context) to check ciphertexts without the module's own code path. */
function refCbc(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = createCipheriv(`aes-${key.length * 8}-cbc`, key, iv).setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

/** Opens matching host and card sessions over the pure functions (card uses i=70 unless told). */
function pair(level: number, opts: { keys?: KeySet; i?: number; cla?: number; s16?: boolean } = {}) {
  const keys = opts.keys ?? same(fromHex('404142434445464748494A4B4C4D4E4F'));
  const i = opts.i ?? 0x70;
  const s16 = opts.s16 ?? false;
  const hostChallenge = fill(s16 ? 16 : 8, 0x5a);
  const card = cardInitializeUpdate({ keys, kvn: 0x30, i, sequenceCounter: 7, sdAid: ISD, kdd: KDD0, hostChallenge });
  const auth = hostAuthenticate({ keys, level, cla: opts.cla, sdAid: ISD }, hostChallenge, card.response);
  const cardSession = cardExternalAuthenticate(card.pending, parseCommand(auth.externalAuthenticate));
  return { keys, host: auth.session, card: cardSession, ea: auth.externalAuthenticate, pending: card.pending };
}

/** One exchange: host wraps, card unwraps (must give back the plain command), card answers, host unwraps. */
function exchange(p: { host: Session; card: Session }, plain: string, answer: string, sw = 0x9000) {
  const wrapped = hostWrap(p.host, fromHex(plain));
  const seen = cardUnwrap(p.card, parseCommand(wrapped));
  const sent = cardWrap(p.card, fromHex(answer), sw);
  const back = hostUnwrap(p.host, concat(sent, uint(sw, 2)));
  return { wrapped, seen, sent, back: hex(back) };
}

// ---------------------------------------------------------------------------------------------------------------
// Vector set A: osmocom/pysim tests/unittests/test_globalplatform.py (KVN 30/31/32, i=70, ISD-R AID)

const seq16 = (base: number, n: number) => Uint8Array.from({ length: n }, (_, i) => base + (i % 16));
const PYSIM_KEYS: Record<number, KeySet> = {
  16: { enc: seq16(0x00, 16), mac: seq16(0x10, 16), dek: seq16(0x20, 16) },
  24: { enc: seq16(0x00, 24), mac: seq16(0x10, 24), dek: seq16(0x20, 24) },
  32: { enc: seq16(0x00, 32), mac: seq16(0x10, 32), dek: seq16(0x20, 32) },
};
const GET_EID = '80E2910006BF3E035C015A00';
const EID_PLAIN = 'BF3E125A1089882119900000000000000000000005';
const CASES = ['80F22002', '80CA006600', '80F220020A4F0212345C054F9F70C5', '80F28002024F0000'];

interface PysimRow {
  name: string;
  bytes: 16 | 24 | 32;
  iu: string;
  iuRsp: string;
  ea: string;
  eid: string;
  eidRsp: string;
  cases: string[];
  /** Session keys computed in the reference file (S-ENC, S-MAC, S-RMAC); not all rows have them. */
  sk?: [string, string, string?];
}

const PYSIM: PysimRow[] = [
  {
    name: 'AES128_11', bytes: 16,
    iu: '8050300008b13e5f938fc108c400', iuRsp: '000000000000000000003003703eb51047495b249f66c484c1d2ef1948000002',
    ea: '84821100107d5f5826a993ebc89eea24957fa0b3ce', eid: '84e291000ebf3e035c015a558d036518a2829700',
    eidRsp: 'bf3e125a1089882119900000000000000000000005971be68992dbbdfa',
    cases: ['84f220020863a63f8959827fb2', '84ca006608a0c6a4a74166f7ce00', '84f22002124f0212345c054f9f70c52249b50272656536', '84f280020a4f00e91443f6dce6b8ed00'],
    sk: ['C4E87149F2114DA66BB015A567D751F9', '8B2635556E987A6B84F43D9FFC197D3F', '3F6B2CE3B3ABD9A99BD4453AFA54CC7B'],
  },
  {
    name: 'AES128_03', bytes: 16,
    iu: '80503000088e1552d0513c60f300', iuRsp: '0000000000000000000030037030760cd2c47c1dd395065fe5ead8a9d7000001',
    ea: '8482030010fd4721a14d9b07003c451d2f8ae6bb21', eid: '84e2910018ca9c00f6713d79bc8baa642bdff51c3f6a4082d3bd9ad26c00',
    eidRsp: 'bf3e125a1089882119900000000000000000000005',
    cases: ['84f2200208c9811b11f1264cf1', '84ca006608e10ab60b3054798800', '84f22002184e2908bdb48b2315a55482e9e936ca122d6ecfae7d17416e', '84f28002180dd10a6b6193e5340b9e77d32d5a179cd710ac2773aefb2800'],
    sk: ['EE54985E150155E021725489F717D645', '59B76DDFF91DBA0515A9644DE3A48863', '5942BF778C5942F17037DA8278F9330D'],
  },
  {
    name: 'AES128_33', bytes: 16,
    iu: '8050300008fdf38259a1e0de4400', iuRsp: '000000000000000000003003703b1aca81e821f219081cdc01c26b372d000003',
    ea: '84823300108c36f96bcc00724a4e13ad591d7da3f0', eid: '84e2910018267a85dfe4a98fca6fb0527e0dfecce4914e40401433c87f00',
    eidRsp: 'f3ba2b1013aa6224f5e1c138d71805c569e5439b47576260b75fc021b25097cb2e68f8a0144975b9',
    cases: ['84f2200208ac6a59024bed84cc', '84ca006608409912ad8fb7aed000', '84f22002185f3dafc3ac14c381536a488bf44e06d056df9d74dbd21e5a', '84f280021865165105be3373347d0424d4400af2ac393f569ec779389e00'],
    sk: ['BC5689F3A0B783A9ED6DA1C5C6BC1F99', '0415F56CBB9E488BB171B2B66081F004', '1EE185123244E047BC9D68B914BD1FBE'],
  },
  {
    name: 'AES192_11', bytes: 24,
    iu: '80503100087396430b768b085b00', iuRsp: '000000000000000000003103708cfc23522ffdbf1e5df5542cac8fd866000003',
    ea: '84821100102145ed30b146f5db252fb7e624cec244', eid: '84e291000ebf3e035c015aff42cf801d14394400',
    eidRsp: 'bf3e125a1089882119900000000000000000000005162fbd33e04940a9',
    cases: ['84f22002084584e4f6784811ee', '84ca006608937776ebe190fa3000', '84f22002124f0212345c054f9f70c59a52bddf3040368c', '84f280020a4f009804b11411f7393d00'],
    sk: ['5D762F02330099944561311FF1FD370B34193A3FF81302C0', '15E4303D3157D8D1DD283B7321434AE83FC80AC9B12E3DAF'],
  },
  {
    name: 'AES192_03', bytes: 24,
    iu: '805031000869c65da8202bf19f00', iuRsp: '00000000000000000000310370b570a67be38446717729d6dd3d2ec5b1000001',
    ea: '848203001065df4f1a356a887905466516d9e5b7c1', eid: '84e2910018d2c6fb477c5d4afe4fd4d21f17eff10d3578ec1774a12a2d00',
    eidRsp: 'bf3e125a1089882119900000000000000000000005',
    cases: ['84f2200208964e188f0b1bb697', '84ca006608f0820035a41d3e1800', '84f220021806b076ed452cd1fa84f77f5c08a146aa77a9286757dea791', '84f2800218d06527e39222dce091fabdb8e9b898417a67a6852d3577db00'],
  },
  {
    name: 'AES192_33', bytes: 24,
    iu: '80503100089b3f2eef0e8c937400', iuRsp: '00000000000000000000310370f6bb305a15bae1a68f79fb08212fbed7000002',
    ea: '84823300109100bc22d58b45b86a26365ce39ff3cf', eid: '84e29100188f7f946c84f70d17994bc6e8791251bb1bb1bf02cf8de58900',
    eidRsp: 'c05176c1b6f72aae50c32cbee63b0e95998928fd4dfb2be9f27ffde8c8476f5909b4805cc4039599',
    cases: ['84f2200208d5d97754b6b3d2ba', '84ca006608516c82b8e30adbeb00', '84f2200218cc247f4761e6944277a4e0d6e32e44025b1e31537e2fc668', '84f2800218ba22b63d509bef5d093b43e5eaed03ed23144ab2d9cb51de00'],
  },
  {
    name: 'AES256_11', bytes: 32,
    iu: '805032000811666d57866c6f5400', iuRsp: '0000000000000000000032037053ea8847efa7674e41498a4d66cf0dee000003',
    ea: '84821100102f2ad190eff2fafc4908996d1cebd310', eid: '84e291000ebf3e035c015af4b680372542b59d00',
    eidRsp: 'bf3e125a10898821199000000000000000000000058012dd7f01f1c4c1',
    cases: ['84f2200208d618b7da68d5fe52', '84ca0066088f3e055db23ad5e500', '84f22002124f0212345c054f9f70c5b6e15cc42404915e', '84f280020a4f00aa124aa74afe7f7500'],
  },
  {
    name: 'AES256_03', bytes: 32,
    iu: '8050320008c6066990fc426e1d00', iuRsp: '000000000000000000003203708682cd81bbd8919f2de3f2664581f118000001',
    ea: '848203001077c493b632edadaf865a1e64acc07ce9', eid: '84e29100183ddaa60594963befaada3525b492ede23c2ab2c1ce3afe4400',
    eidRsp: 'bf3e125a1089882119900000000000000000000005',
    cases: ['84f2200208480ddc8e419da38d', '84ca0066083e9d6a6c0b2d732000', '84f22002183ebfef2da8b04af2a85f491f299b76973df76ff08a4031be', '84f2800218783fff80990f5585b1055010ea95094a26e4a8f1ef4b18e100'],
  },
  {
    name: 'AES256_33', bytes: 32,
    iu: '805032000897b2055fe58599fd00', iuRsp: '00000000000000000000320370a8439a22cedf045fa9f1903b2834f26e000002',
    ea: '8482330010508a0fd959d2e547c6b33154a6be2057', eid: '84e29100187a5ef717eaf1e135ae92fe54429d0e465decda65f5fe5aea00',
    eidRsp: 'ea90dbfa648a67c5eb6abc57f8530b97d0cd5647c5e8732016b55203b078dd2ace7f8bc5d1c1cd99',
    cases: ['84f2200208bcc5c17275545d93', '84ca00660804806aba9d543bb600', '84f2200218717222491556ec81a45f49ce48be33320024801a1c4cb0e0', '84f2800218561f105bccd3a1642904b251ccc1228beb80a82370a8637000'],
    sk: [
      '6882480F1F4CFEE7BDDF6C691B6E1549645A47543CB4FE1042B72DA7CDFDB958',
      '0607C530EB8E7B6E781A70B349370DB8728C4B6ED29A24E5461864C142F98FEC',
      'C88CDCD5473D403CE55264626EAF308B915482E0DF3BF48E35A0F58D18C1F04C',
    ],
  },
];

describe('vector set A: pySim test_globalplatform.py (AES-128/192/256, levels 03/11/33, i=70)', () => {
  for (const v of PYSIM) {
    const keys = PYSIM_KEYS[v.bytes];
    const iu = fromHex(v.iu);
    const hostChallenge = iu.subarray(5, 13);
    const kvn = iu[2];
    const level = fromHex(v.ea)[2];

    it(`${v.name}: host side reproduces INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, GET EID and the four cases`, () => {
      expect(hex(hostInitializeUpdate({ keys, kvn, level, hostChallenge }).apdu)).toBe(v.iu.toUpperCase());
      // sdAid makes the host check the pseudo-random challenge against the sequence counter (Amd D §6.2.2.1).
      const auth = hostAuthenticate({ keys, kvn, level, sdAid: ISD_R }, hostChallenge, fromHex(v.iuRsp));
      expect(hex(auth.externalAuthenticate)).toBe(v.ea.toUpperCase());
      expect(auth.info).toMatchObject({ kvn, i: 0x70, sequenceCounter: fromHex(v.iuRsp)[31] });
      const s = auth.session;
      if (v.sk) {
        expect(hex(s.keys.senc)).toBe(v.sk[0]);
        expect(hex(s.keys.smac)).toBe(v.sk[1]);
        if (v.sk[2]) expect(hex(s.keys.srmac)).toBe(v.sk[2]);
      }
      expect(s.keys.senc.length).toBe(v.bytes);
      expect(hex(hostWrap(s, fromHex(GET_EID)))).toBe(v.eid.toUpperCase());
      expect(hex(hostUnwrap(s, concat(fromHex(v.eidRsp), SW_OK)))).toBe(EID_PLAIN + '9000');
      CASES.forEach((plain, n) => expect(hex(hostWrap(s, fromHex(plain))), `case ${n + 1}`).toBe(v.cases[n].toUpperCase()));
      expect(s.counter).toBe(5);
    });

    it(`${v.name}: card side answers the same INITIALIZE UPDATE, accepts every command and protects the GET EID response`, () => {
      const seq = fromHex(v.iuRsp)[31];
      const card = cardInitializeUpdate({ keys, kvn, i: 0x70, sequenceCounter: seq, sdAid: ISD_R, kdd: KDD0, hostChallenge });
      expect(hex(card.response)).toBe(v.iuRsp.toUpperCase());
      const session = cardExternalAuthenticate(card.pending, cmd(v.ea));
      expect(session.level).toBe(level);
      const eid = cardUnwrap(session, cmd(v.eid));
      expect(hex(encodeCommand(eid))).toBe(GET_EID);
      expect(hex(cardWrap(session, fromHex(EID_PLAIN), 0x9000))).toBe(v.eidRsp.toUpperCase());
      CASES.forEach((plain, n) => expect(hex(encodeCommand(cardUnwrap(session, cmd(v.cases[n])))), `case ${n + 1}`).toBe(plain.toUpperCase()));
    });
  }

  it('AES128_11: the card challenge is KDF(Key-ENC, 02, 000002 || ISD-R AID), and so for every row', () => {
    expect(hex(pseudoRandomChallenge(PYSIM_KEYS[16].enc, 2, ISD_R, false))).toBe('3EB51047495B249F');
    for (const v of PYSIM) {
      const rsp = fromHex(v.iuRsp);
      expect(hex(pseudoRandomChallenge(PYSIM_KEYS[v.bytes].enc, rsp[31], ISD_R, false)), v.name).toBe(hex(rsp.subarray(13, 21)));
    }
  });

  it('AES128_11: card and host cryptograms are KDF(S-MAC, 00/01, host || card challenge, 64 bits)', () => {
    const ctx = fromHex('B13E5F938FC108C4' + '3EB51047495B249F');
    const smac = fromHex('8B2635556E987A6B84F43D9FFC197D3F');
    expect(hex(kdf(smac, Derivation.CARD_CRYPTOGRAM, ctx, 64))).toBe('66C484C1D2EF1948');
    expect(hex(kdf(smac, Derivation.HOST_CRYPTOGRAM, ctx, 64))).toBe('7D5F5826A993EBC8');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Vector set B: kaoh/globalplatform globalplatform/src/scp03Test.c (real-card traces, ISD AID, KVN 30, level 03)

const KAOH_KEYS: KeySet = {
  enc: fromHex('F995D0A069335C7DF42E590317FFEA6D'),
  mac: fromHex('58563362EC5A4541ABCD32B34B1EAE7D'),
  dek: fromHex('0A02A6D687406DCFA09DC70B3EDB7E38'),
};

interface KaohAuth {
  name: string;
  hc: string;
  iuRsp: string;
  ea: string;
  sk?: [string, string, string];
}

const KAOH_AUTH: KaohAuth[] = [
  {
    name: 'delete_application', hc: 'B2BDE1A2DC66BD56',
    iuRsp: '00000000000000000000300370C40932A6FEFEAEB2E127185170F45FCA000015',
    ea: '848203001059D54D932423D29F6313C970875F8C2F',
    sk: ['9B841BB63D1087484FF7F16802017243', '8117FE5ADED74AC0DAABE9FB81DBDB67', '4521D75E4D6F60DBFB8AB4EE254EF6F1'],
  },
  {
    name: 'mutual_auth', hc: '9BD6BF878FB8E991',
    iuRsp: '000000000000000000003003703C80C2CC87EB3A35E4EDBA35E629C33600001E',
    ea: '848203001023EBFEDC579D22CDCDB6A25A5FF7891F',
    sk: ['D83EE38C9954C8078987A5E9EE6AB13C', '6FF37716E0413065E8DFD08BF1E9EC5E', '0254C786E57ACA8982670C1C1A05FF12'],
  },
  {
    name: 'get_status', hc: 'A6D40AEC55FE7986',
    iuRsp: '00000000000000000000300370B6E362D0F90F8101C34B7B21A7455320000025',
    ea: '84820300103D958B36BB38AE5896A559345F81471A',
  },
  {
    name: 'get_status_enc_mac', hc: 'DA2390D378D94B0A',
    iuRsp: '00000000000000000000300370A7EFE2BFDB3A27A6EAE3FF0EA0D17524000085',
    ea: '8482030010953EEC5B4A81BF393ADC2ADFD638827A',
  },
];

/** GET STATUS plaintext responses of the get_status_enc_mac trace (level 03: no R-MAC, they pass untouched). */
const KAOH_STATUS_80 = 'E3324F08A0000001510000009F70020F00C50382FC80C407A0000001515350CE020100CC08A000000151000000EA058003008000';

function kaohSession(v: KaohAuth) {
  const hostChallenge = fromHex(v.hc);
  const auth = hostAuthenticate({ keys: KAOH_KEYS, level: 0x03, sdAid: ISD }, hostChallenge, fromHex(v.iuRsp));
  const seq = fromHex(v.iuRsp)[31];
  const card = cardInitializeUpdate({ keys: KAOH_KEYS, kvn: 0x30, i: 0x70, sequenceCounter: seq, sdAid: ISD, kdd: KDD0, hostChallenge });
  return { auth, card };
}

describe('vector set B: kaoh/globalplatform scp03Test.c real-card traces', () => {
  for (const v of KAOH_AUTH) {
    it(`${v.name}: INITIALIZE UPDATE (host challenge ${v.hc}) → EXTERNAL AUTHENTICATE and session keys, both sides`, () => {
      expect(hex(hostInitializeUpdate({ keys: KAOH_KEYS, level: 3, hostChallenge: fromHex(v.hc) }).apdu)).toBe(`8050000008${v.hc}00`);
      const { auth, card } = kaohSession(v);
      expect(hex(auth.externalAuthenticate)).toBe(v.ea);
      if (v.sk) expect([hex(auth.session.keys.senc), hex(auth.session.keys.smac), hex(auth.session.keys.srmac)]).toEqual(v.sk);
      expect(hex(card.response)).toBe(v.iuRsp);
      expect(cardExternalAuthenticate(card.pending, cmd(v.ea)).level).toBe(0x03);
    });
  }

  it('delete_application: DELETE 4F A0010001514143 4C wraps (C-DEC + C-MAC) to the traced bytes; the card unwraps it', () => {
    const { auth, card } = kaohSession(KAOH_AUTH[0]);
    const wrapped = hostWrap(auth.session, fromHex('80E400800A4F08A00100015141434C'));
    expect(hex(wrapped)).toBe('84E400801829F06AEC3180B3EFE91FF662310B945DE0D5FE66AD67A5B6');
    const cs = cardExternalAuthenticate(card.pending, cmd(KAOH_AUTH[0].ea));
    expect(hex(encodeCommand(cardUnwrap(cs, parseCommand(wrapped))))).toBe('80E400800A4F08A00100015141434C');
    // The traced response "00 9000" passes through a level-03 session unchanged on both sides.
    expect(hex(cardWrap(cs, fromHex('00'), 0x9000))).toBe('00');
    expect(hex(hostUnwrap(auth.session, fromHex('009000')))).toBe('009000');
  });

  it('get_status: GET STATUS 80F24002024F0000 wraps to the traced bytes', () => {
    const { auth } = kaohSession(KAOH_AUTH[2]);
    expect(hex(hostWrap(auth.session, fromHex('80F24002024F0000')))).toBe('84F2400218D18C9A7BB2B1B1C7ED1B24E1B1307CB9D71A66ABC55CBC3A00');
  });

  it('get_status_enc_mac: four chained GET STATUS commands (P1 20, 40, 80, 10) match the trace on both sides', () => {
    const { auth, card } = kaohSession(KAOH_AUTH[3]);
    const cs = cardExternalAuthenticate(card.pending, cmd(KAOH_AUTH[3].ea));
    const traced = [
      '84F2200218705C4D16C7BAC5496AEE0ED9963222455472F3CFAC97BCCA00',
      '84F240021834AF0FEDDAE7C07308600587E1B1E6EC87811520D9A6AAAD00',
      '84F28002188D6CFE9EB359EACB9594D8EC161E45C10ED0138E34A10BF300',
      '84F21002183D98B6DE9CBF3905EAE4FAF5E141C58DAB7013D1076745C700',
    ];
    [0x20, 0x40, 0x80, 0x10].forEach((p1, n) => {
      const plain = encodeCommand({ cla: 0x80, ins: 0xf2, p1, p2: 0x02, data: fromHex('4F00'), ne: 256 });
      expect(hex(hostWrap(auth.session, plain)), `P1 ${p1.toString(16)}`).toBe(traced[n]);
      expect(hex(encodeCommand(cardUnwrap(cs, cmd(traced[n]))))).toBe(hex(plain));
    });
    expect(hex(hostUnwrap(auth.session, fromHex(KAOH_STATUS_80 + '9000')))).toBe(KAOH_STATUS_80 + '9000');
    expect(hex(cardWrap(cs, fromHex(KAOH_STATUS_80), 0x9000))).toBe(KAOH_STATUS_80);
  });

  it('get_status_aes_192: AES-192 key set, i=10, KVN 02 — INITIALIZE UPDATE, EXTERNAL AUTHENTICATE and GET STATUS', () => {
    const key = fromHex('DE2A3629CBC24E8D8869E82C8B4C0D874D88166B6F8A1C12');
    const keys = same(key);
    const hostChallenge = fromHex('4157115CAD7D2FE7');
    const iuRsp = '00008301A8186727A822020310726B1E22EED4F4BBAB21001BFD4B6F02000012';
    expect(hex(hostInitializeUpdate({ keys, level: 3, hostChallenge }).apdu)).toBe('80500000084157115CAD7D2FE700');
    const auth = hostAuthenticate({ keys, level: 0x03, sdAid: ISD }, hostChallenge, fromHex(iuRsp));
    expect(auth.info).toMatchObject({ kvn: 0x02, i: 0x10, sequenceCounter: 0x12 });
    expect(hex(auth.externalAuthenticate)).toBe('84820300109B126D1B1557297F3C06766CA9ACBD27');
    const wrapped = hostWrap(auth.session, fromHex('80F22002024F0000'));
    expect(hex(wrapped)).toBe('84F2200218110C222888859059700E5D42AD65F41299B0BFFC03BF79A800');
    const card = cardInitializeUpdate({ keys, kvn: 0x02, i: 0x10, sequenceCounter: 0x12, sdAid: ISD, kdd: fromHex('00008301A8186727A822'), hostChallenge });
    expect(hex(card.response)).toBe(iuRsp);
    const cs = cardExternalAuthenticate(card.pending, cmd('84820300109B126D1B1557297F3C06766CA9ACBD27'));
    expect(hex(encodeCommand(cardUnwrap(cs, parseCommand(wrapped))))).toBe('80F22002024F0000');
    expect(hex(hostUnwrap(auth.session, fromHex('E30D4F07A00000015153509F7001019000')))).toBe('E30D4F07A00000015153509F7001019000');
  });

  it('send_apdu_rmac_rencryption: level 33, three 165-byte commands and their R-ENC + R-MAC responses', () => {
    const keys = same(fromHex('404142434445464748494A4B4C4D4E4F'));
    const hostChallenge = fromHex('2C8130E574247B1B');
    const iuRsp = fromHex('00010203040506070809000370A5874C57119B976BF94879E36F29E039000001');
    expect(hex(hostInitializeUpdate({ keys, level: 0x33, hostChallenge }).apdu)).toBe('80500000082C8130E574247B1B00');
    // The trace's card challenge was made with an AID that is not recorded, so the host does not check it (no sdAid).
    const auth = hostAuthenticate({ keys, level: 0x33 }, hostChallenge, iuRsp);
    expect(hex(auth.externalAuthenticate)).toBe('8482330010A75F1CD48F3B93DFA57E690937921F92');
    const context = concat(hostChallenge, iuRsp.subarray(13, 21));
    const pending: PendingSession = { keys: deriveSessionKeys(keys, context), context, i: 0x70, s16: false, kvn: 0 };
    const cs = cardExternalAuthenticate(pending, parseCommand(auth.externalAuthenticate));
    const hello = fromHex('48656C6C6F20576F726C64'.repeat(15));
    const plain = concat(fromHex('80400000A5'), hello);
    const commands = [
      '84400000B80422E602DD973125102DDE05875CA115C04D811A40593DB9D9480927CC9A249BD118FB6C674A86BF70D0CD898153A438DAC4CD302B74876D718481FCDB9D39944453BEBD28832300C99FB8035D2DFF3E3CB3F5DAD568330127929207A179226EB5C6C52341A297CB2C8F25E481F1CE6EF6EADD2410E70EB268AF48D29CB20CFCB8448DE83235ADA96A5EEED379C0701924707DA111DBB9039ACF8E19F1CE62AA4EF26D7C871E842ED815245F7F2D9A9A87D9BDA54B188DCB',
      '84400000B803C6D93C9A2EBE310E2215CEAC64C9CB8A03A89657272AE001E398FB7A7F42E02210672D0927DBE2BF6F80AA322D948C2743EFBA75EC51FD9BC5E6B4306371916CC50B0F341177FB99091F560A37C88D1A387443792E128A3A04118D0EA9F8EC989012FE4E097440411852373B4470851AC573A0B15262E506B34F771DCC53A24E91FAD37FE67454FAAFEFCC3E2F7141DCD7174D88933629E632C1CFDD5D1D30017D0CA14FE32A022F064C93EB4769F5A497BE036C5A563F',
      '84400000B8982E6E5F120796589037A751431F835CCF17C5A13CB4D7F5E0948CF48538FEDCD6F2F0A54F813E8BA755DFE22F7B847BF6A8BBDB1FEEC531B44D01B92BD55EEAA5B55B770AF293E4995E14E3076A40A89ED21A6C2F3772839E6E9A31FAB4B493AB31FE1D951AD11D9924DF15C1C33A5F3C90D168E2A78437ED40601B5289C56F2F020C78744C8C22141A2FCFFADB4B4FDE504EFABA6DD9D5EAD7E0F7D57B58F97C28DACD4C9E93052A0F16EFDF2A41DDFE373917C351B9B8',
    ];
    const responses = [
      '20F075017DE9F58A1E3D7567CBE71140AC0EBFA376881449A0665992BB997C6A145AC6BE3B642931C2652F62B85532B45689EB3E37602E6276B72BABE6A0FF00BEB02473EF22792A37F70D17F7715F103528CC6122880FC86AE75E5F085F1B37492FF33DD148162DAFA203D973F3A4579F8B547FACB14034641FC817BBDF119A9EB0F24DED4F9CE3640B46189EE2138B405446FA4F154D4F9600B288299642BEF5A387B71922A0CAD4D77D9596E8F417A6DB42CFE2C1081E9000',
      'EFA214CD7DE37F299690265ECDBF210361CBC87EAA227C7A5FC1C984A8DFFAF82B6C1856E57C399FA46AA13F9A7150F76207BCBF7421EFE6424D1FCFEF090F63CDF6C1F21F951E286D6A237843B4E1AD070D7FB16C883D052338F19D5C5E96135398F6251E5D48984EBE528E42A93CBD880D67D6631BCCEF13C3D54572C77CEAD84D26F72A4A66FA13DDCFA6C1BF8F5CF4AB151D722B3DBE86841F30BA15E4B90834B122257913FAA6F09D0E540E114817C1ED9F9D2F7AD39000',
      '0E625EA4492C2253DF239C271E0DEA22DDB136461742E6AD02FA9710588655A17B9C9C115076E00EF858C84662827AF5B90CE2374A575A7208E708BB3D01F655A996BF10F6077F61FBD71927E352215CE9348429FDAB03A3E6EEC5C71556A3C42B98240D224314638608CFDCFE5847BB2811948956F9204BC69085A034F33982E75BEBDEB71B59665FCEA9EDD27A85ABE908171D68E2FA639E2ABA02A27CD21E3A37EE831A1C1C1CF6ECD1B4C744EBD250EA42072B5300789000',
    ];
    for (let n = 0; n < 3; n++) {
      expect(hex(hostWrap(auth.session, plain)), `command ${n + 1}`).toBe(commands[n]);
      expect(hex(encodeCommand(cardUnwrap(cs, cmd(commands[n]))))).toBe(hex(plain));
      expect(hex(cardWrap(cs, hello, 0x9000)) + '9000', `response ${n + 1}`).toBe(responses[n]);
      expect(hex(hostUnwrap(auth.session, fromHex(responses[n])))).toBe(hex(hello) + '9000');
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Vector set C: GlobalPlatformPro TestPlaintextKeys.java

describe('vector set C: GlobalPlatformPro key check values and KDF', () => {
  const K = fromHex('404142434445464748494A4B4C4D4E4F');

  it('KCV of 404142…4F is 504A77 (first 3 bytes of AES(key, 16×01), Amd D §7.2.2)', () => {
    expect(hex(kcv(K))).toBe('504A77');
  });

  it('session keys from 404142…4F over context 00010203040506070809: values and KCVs C25559 / 0E12CC / 9ACB9C', () => {
    const sk = deriveSessionKeys(same(K), fromHex('00010203040506070809'));
    expect(hex(sk.senc)).toBe('6C858E63BABC4028EDC67DC9FDBCB04A');
    expect(hex(sk.smac)).toBe('036C5E747D9500229B7C99D225506DDD');
    expect(hex(sk.srmac)).toBe('AD97DA99A96DB51B765277D6E988B1D9');
    expect([hex(kcv(sk.senc)), hex(kcv(sk.smac)), hex(kcv(sk.srmac))]).toEqual(['C25559', '0E12CC', '9ACB9C']);
  });

  it('"kdf3" vendor diversification (not Amd D): CMAC(master, i || 000000 || 01 || 00 || KDD), i = 1, 2', () => {
    // A different input layout from the Amd D KDF (counter first), so it is checked on AES-CMAC with a 256-bit key.
    const master = fromHex('8C72C72CF908411653018807950D82FBAD947562F0828A0B10B8B9606ABF3BCD');
    const kdd = fromHex('D9B1DE5D0362DEDCE4FB');
    const block = (i: number) => aesCmac(master, Uint8Array.of(i, 0, 0, 0, 0x01, 0x00), kdd);
    expect(hex(concat(block(1), block(2)))).toBe('9AAC5D0B3601F89438A0D9D0B6B256CFB47E6462DFA5228D3420C4AC7C224781');
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('kdf (Amd D §4.1.5)', () => {
  const ctx = fromHex('00010203040506070809');

  it('derives 128-, 192- and 256-bit session keys from keys of the same size (set A values)', () => {
    const hc = fromHex('7396430B768B085B');
    const cc = fromHex('8CFC23522FFDBF1E');
    expect(hex(kdf(PYSIM_KEYS[24].enc, Derivation.S_ENC, concat(hc, cc), 192))).toBe('5D762F02330099944561311FF1FD370B34193A3FF81302C0');
    const ctx256 = fromHex('97B2055FE58599FD' + 'A8439A22CEDF045F');
    expect(hex(kdf(PYSIM_KEYS[32].mac, Derivation.S_MAC, ctx256, 256))).toBe('0607C530EB8E7B6E781A70B349370DB8728C4B6ED29A24E5461864C142F98FEC');
    expect(hex(kdf(PYSIM_KEYS[32].mac, Derivation.S_RMAC, ctx256, 256))).toBe('C88CDCD5473D403CE55264626EAF308B915482E0DF3BF48E35A0F58D18C1F04C');
  });

  it('puts L and the block counter in the input: the two 128-bit halves differ and L changes everything', () => {
    const k = fromHex('404142434445464748494A4B4C4D4E4F');
    const long = kdf(k, 0x04, ctx, 256);
    // Block 1 and 2 differ only in the counter byte; block 1 is CMAC(k, 00×11 04 00 0100 01 || ctx).
    expect(hex(long.subarray(0, 16))).toBe(hex(aesCmac(k, fromHex('000000000000000000000004' + '00' + '0100' + '01'), ctx)));
    expect(hex(long.subarray(16))).toBe(hex(aesCmac(k, fromHex('000000000000000000000004' + '00' + '0100' + '02'), ctx)));
    expect(hex(kdf(k, 0x04, ctx, 128))).not.toBe(hex(long.subarray(0, 16)));
    expect(hex(kdf(k, 0x04, ctx, 64))).not.toBe(hex(kdf(k, 0x04, ctx, 128).subarray(0, 8)));
    expect(kdf(k, 0x04, ctx, 192).length).toBe(24);
    expect(hex(kdf(k, 0x06, ctx, 128))).toBe('036C5E747D9500229B7C99D225506DDD');
  });

  it('names bad keys, constants and lengths', () => {
    const k = fill(16, 1);
    expect(() => kdf(fill(15, 1), 4, ctx, 128)).toThrow(/KDF key must be an AES key of 16, 24 or 32 bytes, got 15/);
    expect(() => kdf(k, 256, ctx, 128)).toThrow(/derivation constant 256 is not a byte/);
    expect(() => kdf(k, 4, ctx, 0)).toThrow(/output length 0 bits/);
    expect(() => kdf(k, 4, ctx, 12)).toThrow(/output length 12 bits/);
    expect(() => deriveSessionKeys({ enc: k, mac: k, dek: fill(20, 0) }, ctx)).toThrow(/Key-DEK must be an AES key.*got 20/);
  });
});

describe('pseudoRandomChallenge, kcv and key encryption', () => {
  it('pseudo-random challenge for i=70 follows the counter and the AID; S16 gives 16 bytes', () => {
    const k = KAOH_KEYS.enc;
    expect(hex(pseudoRandomChallenge(k, 0x15, ISD, false))).toBe('C40932A6FEFEAEB2');
    expect(hex(pseudoRandomChallenge(k, 0x85, ISD, false))).toBe('A7EFE2BFDB3A27A6');
    expect(hex(pseudoRandomChallenge(k, 0x16, ISD, false))).not.toBe('C40932A6FEFEAEB2');
    const s16 = pseudoRandomChallenge(k, 0x15, ISD, true);
    expect(s16.length).toBe(16);
    expect(hex(s16)).toBe(hex(kdf(k, Derivation.CARD_CHALLENGE, concat(fromHex('000015'), ISD), 128)));
    expect(() => pseudoRandomChallenge(k, 0x1000000, ISD, false)).toThrow(/sequence counter 16777216 does not fit 3 bytes/);
    expect(() => pseudoRandomChallenge(k, 1, fromHex('A0000001'), false)).toThrow(/AID of 4 bytes/);
  });

  it('kcv of 128/192/256-bit keys is AES(key, 16×01)[0..3]', () => {
    for (const n of [16, 24, 32]) {
      const key = seq16(0x30, n);
      expect(hex(kcv(key))).toBe(hex(refCbc(key, new Uint8Array(16), fill(16, 1)).subarray(0, 3)));
    }
    expect(() => kcv(fill(8, 0))).toThrow(/key must be an AES key/);
  });

  it('encryptKeyData is AES-CBC with ICV 0 under the static DEK; AES-192 keys are zero-padded to 32 bytes', () => {
    const dek = PYSIM_KEYS[16].dek;
    for (const n of [16, 24, 32]) {
      const key = seq16(0x40, n);
      const enc = encryptKeyData(dek, key);
      const padded = new Uint8Array(n === 16 ? 16 : 32);
      padded.set(key);
      expect(hex(enc), `${n}-byte key`).toBe(hex(refCbc(dek, new Uint8Array(16), padded)));
      expect(hex(decryptKeyData(dek, enc).subarray(0, n))).toBe(hex(key));
    }
    expect(() => decryptKeyData(dek, fill(20, 0))).toThrow(/20 bytes is not a whole number of AES blocks/);
    expect(() => decryptKeyData(dek, new Uint8Array(0))).toThrow(/0 bytes/);
    expect(() => encryptKeyData(fill(5, 0), fill(16, 0))).toThrow(/Key-DEK must be an AES key/);
  });
});

describe('iOptions (Amd D Table 5-1) and security levels (Table 7-3)', () => {
  it.each([
    [0x70, { pseudoRandom: true, rmac: true, renc: true, s16: false }],
    [0x10, { pseudoRandom: true, rmac: false, renc: false, s16: false }],
    [0x00, { pseudoRandom: false, rmac: false, renc: false, s16: false }],
    [0x60, { pseudoRandom: false, rmac: true, renc: true, s16: false }],
    [0x20, { pseudoRandom: false, rmac: true, renc: false, s16: false }],
    [0x40, { pseudoRandom: false, rmac: false, renc: false, s16: false }],
    [0x71, { pseudoRandom: true, rmac: true, renc: true, s16: true }],
  ])('i=%s', (i, want) => expect(iOptions(i)).toEqual(want));

  it('accepts exactly 00 01 03 11 13 33', () => {
    const ok = Array.from({ length: 256 }, (_, l) => l).filter(isValidLevel);
    expect(ok).toEqual([0x00, 0x01, 0x03, 0x11, 0x13, 0x33]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('host ↔ card round trips at every level', () => {
  const plainCmds = ['80F22002', '80CA006600', '80F220020A4F0212345C054F9F70C5', '80F28002024F0000', '80E2900010' + '11'.repeat(16)];
  it.each([0x01, 0x03, 0x11, 0x13, 0x33])('level %s: commands of all four cases, responses with and without data', (level) => {
    const p = pair(level);
    expect(p.card.level).toBe(level);
    for (const [n, plain] of plainCmds.entries()) {
      const answer = n % 2 ? 'E3054F03A00000' : '';
      const r = exchange(p, plain, answer);
      expect(hex(encodeCommand(r.seen))).toBe(plain);
      expect(r.back).toBe(answer + '9000');
      // What goes over the wire: CLA 84, data encrypted only with C-DEC, MAC 8 bytes, responses per level.
      expect(r.wrapped[0]).toBe(0x84);
      const body = parseCommand(r.wrapped).data;
      const plainData = parseCommand(fromHex(plain)).data;
      if (level & 0x02 && plainData.length) expect(body.length).toBe(pad80(plainData).length + 8);
      else expect(hex(body)).toBe(hex(plainData) + hex(body.subarray(body.length - 8)));
      const expectedLen = (level & 0x20 && answer ? pad80(fromHex(answer)).length : answer.length / 2) + (level & 0x10 ? 8 : 0);
      expect(r.sent.length).toBe(expectedLen);
    }
    expect(p.host.counter).toBe(plainCmds.length);
    expect(p.card.counter).toBe(plainCmds.length);
    expect(hex(p.host.macChain)).toBe(hex(p.card.macChain));
  });

  it('level 00: commands go out plain and responses come back plain', () => {
    const p = pair(0x00);
    expect(hex(hostWrap(p.host, fromHex('80F28002024F0000')))).toBe('80F28002024F0000');
    expect(hex(cardWrap(p.card, fromHex('AABB'), 0x9000))).toBe('AABB');
    expect(hex(hostUnwrap(p.host, fromHex('AABB9000')))).toBe('AABB9000');
  });

  it('MAC chaining: each C-MAC is CMAC(S-MAC, previous full CMAC || header || Lc′ || data) and the chain is the full value', () => {
    const p = pair(0x01);
    let chain = p.host.macChain;
    // The first chaining value is the full CMAC of EXTERNAL AUTHENTICATE, computed from 16 zero bytes.
    const ea = p.ea;
    expect(hex(aesCmac(p.host.keys.smac, new Uint8Array(16), ea.subarray(0, 13)).subarray(0, 8))).toBe(hex(ea.subarray(13)));
    expect(hex(aesCmac(p.host.keys.smac, new Uint8Array(16), ea.subarray(0, 13)))).toBe(hex(chain));
    for (const plain of ['80CA006600', '80F220020A4F0212345C054F9F70C5', '80F22002']) {
      const w = hostWrap(p.host, fromHex(plain));
      const c = parseCommand(w);
      const lcPrime = c.data.length;
      const full = aesCmac(p.host.keys.smac, chain, Uint8Array.of(0x84, c.ins, c.p1, c.p2, lcPrime), c.data.subarray(0, lcPrime - 8));
      expect(hex(c.data.subarray(lcPrime - 8))).toBe(hex(full.subarray(0, 8)));
      expect(hex(p.host.macChain)).toBe(hex(full));
      chain = full;
      cardUnwrap(p.card, c);
    }
    // A command MACed with the right key but a stale chain is refused.
    const stale = { ...p.host, macChain: new Uint8Array(16) };
    expect(swOf(() => cardUnwrap(p.card, parseCommand(hostWrap(stale, fromHex('80CA006600')))))).toBe('6982');
  });

  it('C-DEC: the counter moves on for every command, data or not, and the ICV is AES(S-ENC, counter)', () => {
    const p = pair(0x03);
    const data = fromHex('4F0212345C054F9F70C5');
    exchange(p, '80F22002', ''); // counter 1, no data
    exchange(p, '80CA006600', ''); // counter 2, no data
    const w = parseCommand(hostWrap(p.host, encodeCommand({ cla: 0x80, ins: 0xf2, p1: 0x20, p2: 0x02, data }))); // counter 3
    const senc = p.host.keys.senc;
    const icv = refCbc(senc, new Uint8Array(16), uint(3, 16));
    expect(hex(w.data.subarray(0, 16))).toBe(hex(refCbc(senc, icv, pad80(data))));
    expect(hex(cardUnwrap(p.card, w).data)).toBe(hex(data));
    // 16 bytes of data get a whole padding block (Amd D §6.2.6).
    const w16 = parseCommand(hostWrap(p.host, encodeCommand({ cla: 0x80, ins: 0xe2, p1: 0x90, p2: 0, data: fill(16, 0x11) })));
    expect(w16.data.length).toBe(32 + 8);
    expect(hex(cardUnwrap(p.card, w16).data)).toBe(hex(fill(16, 0x11)));
  });

  it('R-ENC: the response ICV is AES(S-ENC, counter with MSB 80) and the R-MAC covers ciphertext || SW', () => {
    const p = pair(0x33);
    exchange(p, '80F22002', 'AA');
    exchange(p, '80F22002', 'BB');
    const { sent } = exchange(p, '80CA006600', '0102030405');
    const { senc, srmac } = p.card.keys;
    const block = uint(3, 16);
    block[0] = 0x80;
    const icv = refCbc(senc, new Uint8Array(16), block);
    const ct = refCbc(senc, icv, pad80(fromHex('0102030405')));
    expect(hex(sent.subarray(0, 16))).toBe(hex(ct));
    expect(hex(sent.subarray(16))).toBe(hex(aesCmac(srmac, p.card.macChain, ct, SW_OK).subarray(0, 8)));
  });

  it('R-MAC on 62xx/63xx warnings; error status words carry no data and no R-MAC', () => {
    const p = pair(0x13);
    const warn = exchange(p, '80F28002024F0000', 'E3034F0100', 0x6310);
    expect(warn.sent.length).toBe(5 + 8);
    expect(warn.back).toBe('E3034F01006310');
    const w = hostWrap(p.host, fromHex('80CA00FE00'));
    cardUnwrap(p.card, parseCommand(w));
    expect(cardWrap(p.card, new Uint8Array(0), 0x6a88).length).toBe(0);
    expect(hex(hostUnwrap(p.host, fromHex('6A88')))).toBe('6A88');
  });

  it('extended lengths: a wrapped command whose Lc′ exceeds 255 switches to extended Lc and still round-trips', () => {
    const p = pair(0x33);
    const data = Uint8Array.from({ length: 250 }, (_, i) => i);
    const plain = encodeCommand({ cla: 0x80, ins: 0xe2, p1: 0x90, p2: 0x00, data, ne: 256 });
    const w = hostWrap(p.host, plain);
    const c = parseCommand(w);
    expect(c.extended).toBe(true);
    expect(c.data.length).toBe(256 + 8);
    expect(c.ne).toBe(256);
    expect(hex(cardUnwrap(p.card, c).data)).toBe(hex(data));
  });
});

describe('logical channels (GPCS 2.3.1 §11.1.4, Amd D §6.2.4)', () => {
  // Sent CLA keeps the channel; the MAC is computed over the channel-0 class byte 84 (channel number zero, b4=0, b3=1).
  it.each([
    [1, 0x81, 0x85],
    [3, 0x83, 0x87],
    [4, 0xc0, 0xe0],
    [5, 0xc1, 0xe1],
    [19, 0xcf, 0xef],
  ])('channel %s: CLA %s goes out as %s, MACed as 84, and unwraps to the plain class', (_ch, plainCla, sentCla) => {
    const p = pair(0x03, { cla: plainCla });
    expect(p.ea[0]).toBe(sentCla);
    // EXTERNAL AUTHENTICATE on that channel carries the same C-MAC as the channel-0 one would.
    expect(hex(p.ea.subarray(13))).toBe(hex(aesCmac(p.host.keys.smac, new Uint8Array(16), Uint8Array.of(0x84), p.ea.subarray(1, 13)).subarray(0, 8)));
    const chainBefore = p.host.macChain;
    const plain = encodeCommand({ cla: plainCla, ins: 0xf2, p1: 0x80, p2: 0x02, data: fromHex('4F00'), ne: 256 });
    const w = hostWrap(p.host, plain);
    expect(w[0]).toBe(sentCla);
    const c = parseCommand(w);
    const body = c.data.subarray(0, c.data.length - 8);
    const mac = aesCmac(p.host.keys.smac, chainBefore, Uint8Array.of(0x84, 0xf2, 0x80, 0x02, c.data.length), body);
    expect(hex(c.data.subarray(c.data.length - 8))).toBe(hex(mac.subarray(0, 8)));
    const seen = cardUnwrap(p.card, c);
    expect(seen.cla).toBe(plainCla);
    expect(hex(seen.data)).toBe('4F00');
  });

  it('keeps the chaining bit in the sent CLA and in the MACed CLA (90 → 94)', () => {
    const p = pair(0x01);
    const chainBefore = p.host.macChain;
    const w = hostWrap(p.host, fromHex('90E2000002AABB'));
    expect(w[0]).toBe(0x94);
    const mac = aesCmac(p.host.keys.smac, chainBefore, fromHex('94E200000A'), fromHex('AABB'));
    expect(hex(w.subarray(7))).toBe(hex(mac.subarray(0, 8)));
    expect(cardUnwrap(p.card, parseCommand(w)).cla).toBe(0x90);
  });

  it('the card refuses a class byte without GP secure messaging in its place', () => {
    const p = pair(0x01);
    const w = hostWrap(p.host, fromHex('81CA006600'));
    w[0] = 0x81; // SM indication removed
    expect(swOf(() => cardUnwrap(p.card, parseCommand(w)))).toBe('6982');
    const p2 = pair(0x01, { cla: 0xc1 });
    const w2 = hostWrap(p2.host, fromHex('C1CA006600'));
    w2[0] = 0xc1;
    expect(swOf(() => cardUnwrap(p2.card, parseCommand(w2)))).toBe('6982');
  });
});

describe('S16 mode (16-byte challenges, cryptograms and MACs; GPP reading of i b1)', () => {
  it('INITIALIZE UPDATE response is 48 bytes with i=71 and 45 with i=61; MACs are 16 bytes', () => {
    const keys = same(fill(16, 0x42));
    const hostChallenge = fill(16, 0x77);
    const r71 = cardInitializeUpdate({ keys, kvn: 0x30, i: 0x71, sequenceCounter: 1, sdAid: ISD, kdd: KDD0, hostChallenge });
    expect(r71.response.length).toBe(48);
    expect(hex(r71.response.subarray(13, 29))).toBe(hex(pseudoRandomChallenge(keys.enc, 1, ISD, true)));
    const r61 = cardInitializeUpdate({ keys, kvn: 0x30, i: 0x61, sequenceCounter: 1, sdAid: ISD, kdd: KDD0, hostChallenge, random: (n) => fill(n, 0x33) });
    expect(r61.response.length).toBe(45);
    expect(hex(r61.response.subarray(13, 29))).toBe(hex(fill(16, 0x33)));
    const ctx = concat(hostChallenge, fill(16, 0x33));
    const smac = deriveSessionKeys(keys, ctx).smac;
    expect(hex(r61.response.subarray(29))).toBe(hex(kdf(smac, Derivation.CARD_CRYPTOGRAM, ctx, 128)));
    expect(swOf(() => cardInitializeUpdate({ keys, kvn: 0x30, i: 0x71, sequenceCounter: 1, sdAid: ISD, kdd: KDD0, hostChallenge: fill(8, 0) }))).toBe('6700');
  });

  it.each([0x01, 0x03, 0x33])('level %s round trips with 16-byte C-MAC and R-MAC', (level) => {
    const p = pair(level, { i: 0x71, s16: true });
    expect(p.host.s16).toBe(true);
    expect(p.ea.length).toBe(5 + 32);
    const r = exchange(p, '80CA006600', '0102');
    expect(parseCommand(r.wrapped).data.length).toBe(16);
    expect(r.back).toBe('01029000');
    if (level & 0x10) expect(r.sent.length).toBe(16 + 16);
    const r3 = exchange(p, '80F220020A4F0212345C054F9F70C5', '');
    expect(hex(r3.seen.data)).toBe('4F0212345C054F9F70C5');
  });

  it('the host refuses a response whose mode does not match its challenge', () => {
    const keys = same(fill(16, 0x42));
    const r71 = cardInitializeUpdate({ keys, kvn: 0x30, i: 0x71, sequenceCounter: 1, sdAid: ISD, kdd: KDD0, hostChallenge: fill(16, 1) });
    expect(() => hostAuthenticate({ keys, level: 1 }, fill(8, 1), r71.response)).toThrow(/SCP03 S8 gives 29 or 32/);
    // An S8-length response whose i says S16.
    const r70 = cardInitializeUpdate({ keys, kvn: 0x30, i: 0x70, sequenceCounter: 1, sdAid: ISD, kdd: KDD0, hostChallenge: fill(8, 1) });
    const forged = r70.response.slice();
    forged[12] = 0x71;
    expect(() => hostAuthenticate({ keys, level: 1 }, fill(8, 1), forged)).toThrow(Scp03Error);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('failures', () => {
  it('wrong host cryptogram → 6300; the session does not open', () => {
    const p = pair(0x03);
    const forged = p.ea.slice();
    forged[5] ^= 0x01;
    expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(forged)))).toBe('6300');
    // Same cryptogram but keys the card does not hold: the host's cryptogram is wrong for the card.
    const other = pair(0x03, { keys: same(fill(16, 0x99)) });
    expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(other.ea)))).toBe('6300');
  });

  it('EXTERNAL AUTHENTICATE: bad C-MAC 6982, P1 changed after MACing 6982, invalid level or P2 6A86, no SM CLA 6982, length 6700', () => {
    const p = pair(0x03);
    const badMac = p.ea.slice();
    badMac[20] ^= 0x80;
    expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(badMac)))).toBe('6982');
    // P1 is covered by the C-MAC: a host cryptogram for level 03 sent with P1 01 does not verify.
    const p1 = p.ea.slice();
    p1[2] = 0x01;
    expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(p1)))).toBe('6982');
    for (const level of [0x02, 0x10, 0x12, 0x23, 0x31, 0x30, 0xff]) {
      const bad = p.ea.slice();
      bad[2] = level;
      expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(bad))), `level ${level.toString(16)}`).toBe('6A86');
    }
    const p2 = p.ea.slice();
    p2[3] = 0x01;
    expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(p2)))).toBe('6A86');
    const noSm = p.ea.slice();
    noSm[0] = 0x80;
    expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(noSm)))).toBe('6982');
    expect(swOf(() => cardExternalAuthenticate(p.pending, parseCommand(p.ea.subarray(0, 20).map((b, i) => (i === 4 ? 15 : b)))))).toBe('6700');
    // None of these spoilt the pending session: the genuine command still opens it.
    expect(cardExternalAuthenticate(p.pending, parseCommand(p.ea)).level).toBe(0x03);
  });

  it('R-MAC or R-ENC asked for but not offered by i → 6A86 on the card, Scp03Error on the host', () => {
    const keys = same(fill(16, 0x42));
    const hostChallenge = fill(8, 1);
    const card = cardInitializeUpdate({ keys, kvn: 0x30, i: 0x10, sequenceCounter: 1, sdAid: ISD, kdd: KDD0, hostChallenge });
    expect(() => hostAuthenticate({ keys, level: 0x13 }, hostChallenge, card.response)).toThrow(/needs R-MAC, which the card's i=10 does not offer/);
    const ok = hostAuthenticate({ keys, level: 0x03 }, hostChallenge, card.response);
    const forged = ok.externalAuthenticate.slice();
    forged[2] = 0x13;
    expect(swOf(() => cardExternalAuthenticate(card.pending, parseCommand(forged)))).toBe('6A86');
    const c20 = cardInitializeUpdate({ keys, kvn: 0x30, i: 0x20, sequenceCounter: 0, sdAid: ISD, kdd: KDD0, hostChallenge, random: (n) => fill(n, 2) });
    expect(() => hostAuthenticate({ keys, level: 0x33 }, hostChallenge, c20.response)).toThrow(/needs R-ENC/);
    expect(() => hostAuthenticate({ keys, level: 0x07 }, hostChallenge, c20.response)).toThrow(/security level 07 is not one of/);
  });

  it('bad C-MAC → 6982; a replayed command → 6982; a dropped command breaks the chain', () => {
    const p = pair(0x01);
    const w = hostWrap(p.host, fromHex('80F28002024F0000'));
    const bad = w.slice();
    bad[bad.length - 2] ^= 0x01;
    expect(swOf(() => cardUnwrap({ ...p.card, macChain: p.card.macChain.slice() }, parseCommand(bad)))).toBe('6982');
    cardUnwrap(p.card, parseCommand(w));
    expect(swOf(() => cardUnwrap(p.card, parseCommand(w)))).toBe('6982');

    const q = pair(0x03);
    hostWrap(q.host, fromHex('80CA006600')); // never reaches the card
    expect(swOf(() => cardUnwrap(q.card, parseCommand(hostWrap(q.host, fromHex('80CA006600')))))).toBe('6982');
  });

  it('C-DEC data that is not whole blocks or has no 80 padding → 6982', () => {
    const p = pair(0x03);
    // MAC a command whose "ciphertext" has 17 bytes: passes the MAC, fails the block check.
    const forge = (body: Uint8Array) => {
      const chain = p.card.macChain;
      const full = aesCmac(p.card.keys.smac, chain, Uint8Array.of(0x84, 0xe2, 0x90, 0x00, body.length + 8), body);
      return parseCommand(encodeCommand({ cla: 0x84, ins: 0xe2, p1: 0x90, p2: 0, data: concat(body, full.subarray(0, 8)) }));
    };
    expect(swOf(() => cardUnwrap({ ...p.card, macChain: p.card.macChain.slice() }, forge(fill(17, 1))))).toBe('6982');
    // A block that decrypts to something without 80 00.. padding (encrypt 16 bytes of zero with the right ICV).
    const senc = p.card.keys.senc;
    const icv = refCbc(senc, new Uint8Array(16), uint(p.card.counter + 1, 16));
    const noPad = refCbc(senc, icv, new Uint8Array(16));
    expect(swOf(() => cardUnwrap(p.card, forge(noPad)))).toBe('6982');
  });

  it('host: bad card cryptogram, bad R-MAC, bad R-ENC, wrong SCP, KVN mismatch and a wrong pseudo-random challenge', () => {
    const keys = same(fill(16, 0x42));
    const hostChallenge = fill(8, 1);
    const card = cardInitializeUpdate({ keys, kvn: 0x30, i: 0x70, sequenceCounter: 5, sdAid: ISD, kdd: KDD0, hostChallenge });
    const r = card.response;
    const badCgm = r.slice();
    badCgm[25] ^= 1;
    expect(() => hostAuthenticate({ keys, level: 1 }, hostChallenge, badCgm)).toThrow(/card cryptogram does not verify/);
    expect(() => hostAuthenticate({ keys: same(fill(16, 0x43)), level: 1 }, hostChallenge, r)).toThrow(Scp03Error);
    const scp02 = r.slice();
    scp02[11] = 0x02;
    expect(() => hostAuthenticate({ keys, level: 1 }, hostChallenge, scp02)).toThrow(/SCP 02, not SCP03/);
    expect(() => hostAuthenticate({ keys, level: 1, kvn: 0x31 }, hostChallenge, r)).toThrow(/key version 30, host asked for 31/);
    expect(() => hostAuthenticate({ keys, level: 1, sdAid: ISD_R }, hostChallenge, r)).toThrow(/pseudo-random card challenge/);
    expect(() => hostAuthenticate({ keys, level: 1 }, hostChallenge, r.subarray(0, 29))).toThrow(/lacks a sequence counter/);
    expect(() => hostAuthenticate({ keys, level: 1 }, hostChallenge, r.subarray(0, 30))).toThrow(/response of 30 bytes/);

    const p = pair(0x33);
    expect(exchange(p, '80CA006600', '0102').sent.length).toBe(16 + 8);
    cardUnwrap(p.card, parseCommand(hostWrap(p.host, fromHex('80CA006600'))));
    const rsp = concat(cardWrap(p.card, fromHex('0102'), 0x9000), SW_OK);
    const badR = rsp.slice();
    badR[20] ^= 1;
    expect(() => hostUnwrap(p.host, badR)).toThrow(/R-MAC of the response \(SW 9000\) does not verify/);
    expect(hex(hostUnwrap(p.host, rsp))).toBe('01029000');
    expect(() => hostUnwrap(p.host, fromHex('0102039000'))).toThrow(/no room for the 8-byte R-MAC/);
    // Correct R-MAC over a ciphertext that is not whole blocks, or that decrypts without 80 00.. padding.
    const rmaced = (ct: Uint8Array) => concat(ct, aesCmac(p.host.keys.srmac, p.host.macChain, ct, SW_OK).subarray(0, 8), SW_OK);
    expect(() => hostUnwrap(p.host, rmaced(fill(15, 7)))).toThrow(/15 bytes is not whole AES blocks/);
    const block = uint(p.host.counter, 16);
    block[0] = 0x80;
    const noPad = refCbc(p.host.keys.senc, refCbc(p.host.keys.senc, new Uint8Array(16), block), fill(16, 0x01));
    expect(() => hostUnwrap(p.host, rmaced(noPad))).toThrow(/has no 80 00.. padding/);
    expect(() => hostUnwrap(p.host, fromHex('90'))).toThrow(/no status word/);
  });

  it('host: bad wrap input and bad host challenges are named', () => {
    const p = pair(0x01);
    expect(() => hostWrap(p.host, fromHex('80CA00'))).toThrow(/cannot wrap 80CA00/);
    expect(() => hostWrap(p.host, fromHex('A0CA006600'))).toThrow(/class byte A0 is not valid/);
    const keys = same(fill(16, 1));
    expect(() => hostInitializeUpdate({ keys, level: 1, hostChallenge: fill(7, 0) })).toThrow(/host challenge of 7 bytes/);
    expect(() => hostInitializeUpdate({ keys, level: 1, kvn: 300 })).toThrow(/KVN 300 is not a byte/);
    expect(() => hostAuthenticate({ keys, level: 1 }, fill(9, 0), new Uint8Array(29))).toThrow(/host challenge of 9 bytes/);
    expect(() => cardInitializeUpdate({ keys, kvn: 0x30, i: 0x70, sequenceCounter: 1, sdAid: ISD, kdd: fill(8, 0), hostChallenge: fill(8, 0) })).toThrow(/diversification data of 8 bytes/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** A minimal card over the pure functions, to drive openSecureChannel: IU, EA and one echo command. */
function miniCard(keys: KeySet, i: number) {
  let seq = 0;
  let pending: PendingSession | null = null;
  let session: Session | null = null;
  const out = (data: Uint8Array, sw: number) => concat(data, uint(sw, 2));
  const seen: string[] = [];
  const transmit = async (raw: Uint8Array): Promise<Uint8Array> => {
    seen.push(hex(raw));
    try {
      const c = parseCommand(raw);
      if (c.ins === 0x50) {
        session = null;
        if (c.data.length !== (iOptions(i).s16 ? 16 : 8)) return out(new Uint8Array(0), 0x6700);
        if (c.p1 !== 0 && c.p1 !== 0x30) return out(new Uint8Array(0), 0x6a88);
        const r = cardInitializeUpdate({ keys, kvn: 0x30, i, sequenceCounter: ++seq, sdAid: ISD, kdd: KDD0, hostChallenge: c.data });
        pending = r.pending;
        return out(r.response, 0x9000);
      }
      if (c.ins === 0x82) {
        const p = pending;
        pending = null;
        if (!p) return out(new Uint8Array(0), 0x6985);
        session = cardExternalAuthenticate(p, c);
        return out(new Uint8Array(0), 0x9000);
      }
      if (!session) return out(new Uint8Array(0), 0x6982);
      const plain = cardUnwrap(session, c);
      return out(cardWrap(session, plain.data, 0x9000), 0x9000);
    } catch (e) {
      session = null;
      if (e instanceof IsoError) return out(new Uint8Array(0), e.sw);
      throw e;
    }
  };
  return { transmit, seen };
}

describe('openSecureChannel over any transport', () => {
  const keys = same(fill(16, 0x42));

  it('opens an S8 session at level 33 and echoes data through it', async () => {
    const card = miniCard(keys, 0x70);
    const sc = await openSecureChannel(card.transmit, { keys, level: 0x33, sdAid: ISD });
    expect(sc.info.sequenceCounter).toBe(1);
    expect(hex(await sc.transmit(fromHex('80E2900003ABCDEF00')))).toBe('ABCDEF9000');
    expect(card.seen[0].startsWith('8050000008')).toBe(true);
  });

  it('retries with a 16-byte host challenge when the card answers 6700 (S16 card)', async () => {
    const card = miniCard(keys, 0x71);
    const sc = await openSecureChannel(card.transmit, { keys, level: 0x03 });
    expect(sc.session.s16).toBe(true);
    expect(card.seen.map((a) => a.slice(0, 10))).toEqual(['8050000008', '8050000010', '8482030020']);
    expect(hex(await sc.transmit(fromHex('80E2900002AB01')))).toBe('AB019000');
  });

  it('reports INITIALIZE UPDATE and EXTERNAL AUTHENTICATE failures as Scp03Error with the SW', async () => {
    const card = miniCard(keys, 0x70);
    await expect(openSecureChannel(card.transmit, { keys, kvn: 0x31, level: 1 })).rejects.toMatchObject({
      name: 'Scp03Error',
      sw: 0x6a88,
      message: expect.stringMatching(/INITIALIZE UPDATE failed: SW 6A88/),
    });
    // A transport that spoils the host cryptogram: the card answers 6300 and the host says so.
    const spoil = async (a: Uint8Array) => {
      const b = a.slice();
      if (b[1] === 0x82) b[5] ^= 1;
      return card.transmit(b);
    };
    await expect(openSecureChannel(spoil, { keys, level: 1 })).rejects.toMatchObject({ name: 'Scp03Error', sw: 0x6300 });
    await expect(openSecureChannel(card.transmit, { keys: same(fill(16, 0x41)), level: 1 })).rejects.toThrow(/card cryptogram does not verify/);
  });
});

/**
 * Published vectors first: RFC 9382 Appendix B (SPAKE2-P256-SHA256-HKDF-HMAC-SHA256, empty AAD),
 * the M and N constants of RFC 9382 §6 recomputed with the procedure of Appendix A,
 * and RFC 5869 Appendix A.1 for the HKDF we use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdf, extract } from '@noble/hashes/hkdf.js';
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt.js';
import { bytesToHex, hexToBytes } from '../src/core/assert.js';
import { handshakeAad, recipientRespond, senderStart } from '../src/core/handshake.js';
import { derivePasswordScalar, passwordSalt, SCRYPT_DKLEN, SCRYPT_N, SCRYPT_P, SCRYPT_R } from '../src/core/password.js';
import { spake2KeySchedule, spake2Start, spake2Transcript } from '../src/core/spake2.js';
import { ED25519_SUITE, P256_SUITE, POINT_CONSTANTS, POINT_SEEDS } from '../src/core/spake2-suites.js';

interface Vector {
  A: string;
  B: string;
  w: string;
  x: string;
  y: string;
  pA: string;
  pB: string;
  K: string;
  TT: string;
  hashTT: string;
  Ke: string;
  Ka: string;
  KcA: string;
  KcB: string;
  cA: string;
  cB: string;
}

/** RFC 9382 Appendix B, all four cases. */
const RFC9382_VECTORS: Vector[] = [
  {
    A: 'server',
    B: 'client',
    w: '2ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f',
    x: '43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729',
    y: 'dcb60106f276b02606d8ef0a328c02e4b629f84f89786af5befb0bc75b6e66be',
    pA: '04a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c',
    pB: '0406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b7',
    K: '0412af7e89717850671913e6b469ace67bd90a4df8ce45c2af19010175e37eed69f75897996d539356e2fa6a406d528501f907e04d97515fbe83db277b715d3325',
    TT:
      '06000000000000007365727665720600000000000000636c69656e74410000000000000004a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c41000000000000000406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b741000000000000000412af7e89717850671913e6b469ace67bd90a4df8ce45c2af19010175e37eed69f75897996d539356e2fa6a406d528501f907e04d97515fbe83db277b715d332520000000000000002ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f',
    hashTT: '0e0672dc86f8e45565d338b0540abe6915bdf72e2b35b5c9e5663168e960a91b',
    Ke: '0e0672dc86f8e45565d338b0540abe69',
    Ka: '15bdf72e2b35b5c9e5663168e960a91b',
    KcA: '00c12546835755c86d8c0db7851ae86f',
    KcB: 'a9fa3406c3b781b93d804485430ca27a',
    cA: '58ad4aa88e0b60d5061eb6b5dd93e80d9c4f00d127c65b3b35b1b5281fee38f0',
    cB: 'd3e2e547f1ae04f2dbdbf0fc4b79f8ecff2dff314b5d32fe9fcef2fb26dc459b',
  },
  {
    A: '',
    B: 'client',
    w: '0548d8729f730589e579b0475a582c1608138ddf7054b73b5381c7e883e2efae',
    x: '403abbe3b1b4b9ba17e3032849759d723939a27a27b9d921c500edde18ed654b',
    y: '903023b6598908936ea7c929bd761af6039577a9c3f9581064187c3049d87065',
    pA: '04a897b769e681c62ac1c2357319a3d363f610839c4477720d24cbe32f5fd85f44fb92ba966578c1b712be6962498834078262caa5b441ecfa9d4a9485720e918a',
    pB: '04e0f816fd1c35e22065d5556215c097e799390d16661c386e0ecc84593974a61b881a8c82327687d0501862970c64565560cb5671f696048050ca66ca5f8cc7fc',
    K: '048f83ec9f6e4f87cc6f9dc740bdc2769725f923364f01c84148c049a39a735ebda82eac03e00112fd6a5710682767cff5361f7e819e53d8d3c3a2922e0d837aa6',
    TT:
      '00000000000000000600000000000000636c69656e74410000000000000004a897b769e681c62ac1c2357319a3d363f610839c4477720d24cbe32f5fd85f44fb92ba966578c1b712be6962498834078262caa5b441ecfa9d4a9485720e918a410000000000000004e0f816fd1c35e22065d5556215c097e799390d16661c386e0ecc84593974a61b881a8c82327687d0501862970c64565560cb5671f696048050ca66ca5f8cc7fc4100000000000000048f83ec9f6e4f87cc6f9dc740bdc2769725f923364f01c84148c049a39a735ebda82eac03e00112fd6a5710682767cff5361f7e819e53d8d3c3a2922e0d837aa620000000000000000548d8729f730589e579b0475a582c1608138ddf7054b73b5381c7e883e2efae',
    hashTT: '642f05c473c2cd79909f9a841e2f30a70bf89b18180af97353ba198789c2b963',
    Ke: '642f05c473c2cd79909f9a841e2f30a7',
    Ka: '0bf89b18180af97353ba198789c2b963',
    KcA: 'c6be376fc7cd1301fd0a13adf3e7bffd',
    KcB: 'b7243f4ae60440a49b3f8cab3c1fba07',
    cA: '47d29e6666af1b7dd450d571233085d7a9866e4d49d2645e2df975489521232b',
    cB: '3313c5cefc361d27fb16847a91c2a73b766ffa90a4839122a9b70a2f6bd1d6df',
  },
  {
    A: 'server',
    B: '',
    w: '626e0cdc7b14c9db3e52a0b1b3a768c98e37852d5db30febe0497b14eae8c254',
    x: '07adb3db6bc623d3399726bfdbfd3d15a58ea776ab8a308b00392621291f9633',
    y: 'b6a4fc8dbb629d4ba51d6f91ed1532cf87adec98f25dd153a75accafafedec16',
    pA: '04f88fb71c99bfffaea370966b7eb99cd4be0ff1a7d335caac4211c4afd855e2e15a873b298503ad8ba1d9cbb9a392d2ba309b48bfd7879aefd0f2cea6009763b0',
    pB: '040c269d6be017dccb15182ac6bfcd9e2a14de019dd587eaf4bdfd353f031101e7cca177f8eb362a6e83e7d5e729c0732e1b528879c086f39ba0f31a9661bd34db',
    K: '0445ee233b8ecb51ebd6e7da3f307e88a1616bae2166121221fdc0dadb986afaf3ec8a988dc9c626fa3b99f58a7ca7c9b844bb3e8dd9554aafc5b53813504c1cbe',
    TT:
      '06000000000000007365727665720000000000000000410000000000000004f88fb71c99bfffaea370966b7eb99cd4be0ff1a7d335caac4211c4afd855e2e15a873b298503ad8ba1d9cbb9a392d2ba309b48bfd7879aefd0f2cea6009763b04100000000000000040c269d6be017dccb15182ac6bfcd9e2a14de019dd587eaf4bdfd353f031101e7cca177f8eb362a6e83e7d5e729c0732e1b528879c086f39ba0f31a9661bd34db41000000000000000445ee233b8ecb51ebd6e7da3f307e88a1616bae2166121221fdc0dadb986afaf3ec8a988dc9c626fa3b99f58a7ca7c9b844bb3e8dd9554aafc5b53813504c1cbe2000000000000000626e0cdc7b14c9db3e52a0b1b3a768c98e37852d5db30febe0497b14eae8c254',
    hashTT: '005184ff460da2ce59062c87733c299c3521297d736598fc0a1127600efa1afb',
    Ke: '005184ff460da2ce59062c87733c299c',
    Ka: '3521297d736598fc0a1127600efa1afb',
    KcA: 'f3da53604f0aeecea5a33be7bddf6edf',
    KcB: '9e3f86848736f159bd92b6e107ec6799',
    cA: 'bc9f9bbe99f26d0b2260e6456e05a86196a3307ec6663a18bf6ac825736533b2',
    cB: 'c2370e1bf813b086dff0d834e74425a06e6390f48f5411900276dcccc5a297ec',
  },
  {
    A: '',
    B: '',
    w: '7bf46c454b4c1b25799527d896508afd5fc62ef4ec59db1efb49113063d70cca',
    x: '8cef65df64bb2d0f83540c53632de911b5b24b3eab6cc74a97609fd659e95473',
    y: 'd7a66f64074a84652d8d623a92e20c9675c61cb5b4f6a0063e4648a2fdc02d53',
    pA: '04a65b367a3f613cf9f0654b1b28a1e3a8a40387956c8ba6063e8658563890f46ca1ef6a676598889fc28de2950ab8120b79a5ef1ea4c9f44bc98f585634b46d66',
    pB: '04589f13218822710d98d8b2123a079041052d9941b9cf88c6617ddb2fcc0494662eea8ba6b64692dc318250030c6af045cb738bc81ba35b043c3dcb46adf6f58d',
    K: '041a3c03d51b452537ca2a1fea6110353c6d5ed483c4f0f86f4492ca3f378d40a994b4477f93c64d928edbbcd3e85a7c709b7ea73ee97986ce3d1438e135543772',
    TT:
      '00000000000000000000000000000000410000000000000004a65b367a3f613cf9f0654b1b28a1e3a8a40387956c8ba6063e8658563890f46ca1ef6a676598889fc28de2950ab8120b79a5ef1ea4c9f44bc98f585634b46d66410000000000000004589f13218822710d98d8b2123a079041052d9941b9cf88c6617ddb2fcc0494662eea8ba6b64692dc318250030c6af045cb738bc81ba35b043c3dcb46adf6f58d4100000000000000041a3c03d51b452537ca2a1fea6110353c6d5ed483c4f0f86f4492ca3f378d40a994b4477f93c64d928edbbcd3e85a7c709b7ea73ee97986ce3d1438e13554377220000000000000007bf46c454b4c1b25799527d896508afd5fc62ef4ec59db1efb49113063d70cca',
    hashTT: 'fc6374762ba5cf11f4b2caa08b2cd1b9907ae0e26e8d6234318d91583cd74c86',
    Ke: 'fc6374762ba5cf11f4b2caa08b2cd1b9',
    Ka: '907ae0e26e8d6234318d91583cd74c86',
    KcA: '5dbd2f477166b7fb6d61febbd77a5563',
    KcB: '7689b4654407a5faeffdc8f18359d8a3',
    cA: 'dfb4db8d48ae5a675963ea5e6c19d98d4ea028d8e898dad96ea19a80ade95dca',
    cB: 'd0f0609d1613138d354f7e95f19fb556bf52d751947241e8c7118df5ef0ae175',
  },
];

const utf8 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'utf8'));
const hex = (h: string): Uint8Array => hexToBytes(h, 'vector');
const big = (h: string): bigint => BigInt('0x' + h);
const EMPTY = new Uint8Array(0);

for (const v of RFC9382_VECTORS) {
  const name = `RFC 9382 Appendix B: A='${v.A}', B='${v.B}'`;

  test(`${name}: the full API as A and as B`, () => {
    const common = { curve: 'p256' as const, w: big(v.w), idA: utf8(v.A), idB: utf8(v.B), aad: EMPTY };
    const a = spake2Start({ ...common, role: 'A', randomScalar: () => big(v.x) });
    const b = spake2Start({ ...common, role: 'B', randomScalar: () => big(v.y) });
    assert.equal(bytesToHex(a.message), v.pA);
    assert.equal(bytesToHex(b.message), v.pB);
    const ra = a.finish(b.message);
    const rb = b.finish(a.message);
    for (const r of [ra, rb]) {
      assert.equal(bytesToHex(r.Ke), v.Ke);
      assert.equal(bytesToHex(r.KcA), v.KcA);
      assert.equal(bytesToHex(r.KcB), v.KcB);
      assert.equal(bytesToHex(r.cA), v.cA);
      assert.equal(bytesToHex(r.cB), v.cB);
    }
  });

  test(`${name}: K, TT and the key schedule step by step`, () => {
    const P = p256.Point;
    const w = big(v.w);
    const N = P.fromBytes(hex(POINT_CONSTANTS.p256.N));
    const M = P.fromBytes(hex(POINT_CONSTANTS.p256.M));
    const kA = P.fromBytes(hex(v.pB)).subtract(N.multiply(w)).multiply(big(v.x));
    const kB = P.fromBytes(hex(v.pA)).subtract(M.multiply(w)).multiply(big(v.y));
    assert.equal(bytesToHex(kA.toBytes(false)), v.K);
    assert.equal(bytesToHex(kB.toBytes(false)), v.K);
    const TT = spake2Transcript('p256', { idA: utf8(v.A), idB: utf8(v.B), pA: hex(v.pA), pB: hex(v.pB), K: hex(v.K), w });
    assert.equal(bytesToHex(TT), v.TT);
    assert.equal(bytesToHex(sha256(TT)), v.hashTT);
    const ks = spake2KeySchedule('p256', TT, EMPTY);
    assert.deepEqual(
      Object.fromEntries(Object.entries(ks).map(([k, b]) => [k, bytesToHex(b)])),
      { Ke: v.Ke, Ka: v.Ka, KcA: v.KcA, KcB: v.KcB, cA: v.cA, cB: v.cB },
    );
  });
}

/** RFC 9382 Appendix A: iterated SHA-256 of the seed, formatted for the group, first valid element wins. */
function iteratedHash(seed: Uint8Array, n: number): Uint8Array {
  let h = seed;
  for (let i = 0; i < n; i++) h = sha256(h);
  return h;
}

function bigHash(seed: Uint8Array, start: number, size: number): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (let i = start; i < start + Math.ceil(size / 32); i++) blocks.push(iteratedHash(seed, i));
  return Uint8Array.from(Buffer.concat(blocks)).slice(0, size);
}

function generatePoint(seed: string, size: number, format: (s: Uint8Array) => Uint8Array, valid: (s: Uint8Array) => boolean) {
  for (let i = 1; i < 1000; i++) {
    const candidate = format(bigHash(utf8(seed), i, size));
    if (valid(candidate)) return { encoded: bytesToHex(candidate), iterations: i };
  }
  throw new Error('no point found');
}

test('RFC 9382 §6: edwards25519 M and N decode to prime-order points', () => {
  for (const point of [ED25519_SUITE.M, ED25519_SUITE.N]) {
    assert.equal(point.is0(), false);
    assert.equal(point.isTorsionFree(), true);
  }
  assert.equal(bytesToHex(ED25519_SUITE.M.toBytes()), POINT_CONSTANTS.ed25519.M);
  assert.equal(bytesToHex(ED25519_SUITE.N.toBytes()), POINT_CONSTANTS.ed25519.N);
});

test('RFC 9382 Appendix A: recomputing edwards25519 M and N from their seeds', () => {
  const valid = (s: Uint8Array): boolean => {
    try {
      const p = ed25519.Point.fromBytes(s, false);
      return !p.is0() && p.isTorsionFree();
    } catch {
      return false;
    }
  };
  const M = generatePoint(POINT_SEEDS.ed25519.M, 32, (s) => s, valid);
  const N = generatePoint(POINT_SEEDS.ed25519.N, 32, (s) => s, valid);
  assert.equal(M.encoded, POINT_CONSTANTS.ed25519.M);
  assert.equal(N.encoded, POINT_CONSTANTS.ed25519.N);
});

test('RFC 9382 Appendix A: recomputing P-256 M and N from their seeds', () => {
  const format = (s: Uint8Array): Uint8Array => {
    const out = s.slice();
    out[0] = (s[0]! & 1) | 2;
    return out;
  };
  const valid = (s: Uint8Array): boolean => {
    try {
      return !p256.Point.fromBytes(s).is0();
    } catch {
      return false;
    }
  };
  const M = generatePoint(POINT_SEEDS.p256.M, 33, format, valid);
  const N = generatePoint(POINT_SEEDS.p256.N, 33, format, valid);
  assert.equal(M.encoded, POINT_CONSTANTS.p256.M);
  assert.equal(N.encoded, POINT_CONSTANTS.p256.N);
  assert.equal(bytesToHex(P256_SUITE.M.toBytes(true)), POINT_CONSTANTS.p256.M);
  assert.equal(bytesToHex(P256_SUITE.N.toBytes(true)), POINT_CONSTANTS.p256.N);
});

test('suite constants: orders, cofactors and lengths', () => {
  assert.equal(ED25519_SUITE.order, 2n ** 252n + 27742317777372353535851937790883648493n);
  assert.equal(ED25519_SUITE.cofactor, 8n);
  assert.equal(ED25519_SUITE.elementLength, 32);
  assert.equal(ED25519_SUITE.scalarLength, 32);
  assert.equal(P256_SUITE.order, 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n);
  assert.equal(P256_SUITE.cofactor, 1n);
  assert.equal(P256_SUITE.elementLength, 65);
  assert.equal(P256_SUITE.scalarLength, 32);
  // w in TT: big-endian, padded to the length of p (RFC 9382 §3.3), for both suites.
  assert.equal(bytesToHex(ED25519_SUITE.encodeScalar(0x0102n)), '00'.repeat(30) + '0102');
  assert.equal(bytesToHex(P256_SUITE.encodeScalar(0x0102n)), '00'.repeat(30) + '0102');
});

test('RFC 5869 Appendix A.1 (test case 1) through @noble/hashes HKDF-SHA256', () => {
  const ikm = hex('0b'.repeat(22));
  const salt = hex('000102030405060708090a0b0c');
  const info = hex('f0f1f2f3f4f5f6f7f8f9');
  assert.equal(bytesToHex(extract(sha256, ikm, salt)), '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
  assert.equal(
    bytesToHex(hkdf(sha256, ikm, salt, info, 42)),
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
  );
});

/** docs/protocol.md §4.9: the worked example, value by value (also re-derived there independently, in Python). */
const WORKED = {
  salt: '7473632d63726f632f76322f7370616b65322f7700656432353531390037',
  w: '06284413fa211649ce1a031a4f039d4006d17a0d9724caf236106dd9099eceec',
  x: '14c710fec2c2384109f8a333536fd00e23f9a9212f869e97c9afb191f4bdc630',
  y: '345691ea043709adb07da2ab9fa5922dbfa352f0bd63ade9851b41dde55e681c',
  TT: '12000000000000007473632d63726f632f76312f73656e64657215000000000000007473632d63726f632f76312f726563697069656e74200000000000000014c710fec2c2384109f8a333536fd00e23f9a9212f869e97c9afb191f4bdc6302000000000000000345691ea043709adb07da2ab9fa5922dbfa352f0bd63ade9851b41dde55e681c20000000000000009554b1ec97871190bb2c0ade08f2699ab43ed1e348a1b8c76c671b5faeb721dc200000000000000006284413fa211649ce1a031a4f039d4006d17a0d9724caf236106dd9099eceec',
  Ke: '5fb2e3d8aab499650cfb1000425ab046',
  Ka: '91d43ac7b6852f1ae514472f90d72fec',
  KcA: '1798b5c018c5d4fbd19a3966d1c60964',
  KcB: 'dfffae929a0cf3aed9589ce4af05629e',
  cA: 'e6146ae1c0369bf9300e2ab9453d0c3a3b694b7743df7a51691477252890d606',
  cB: 'ee280a7de285ed96c0739c37bfd57e64a6703c0e4471fe6a116f8b63c33bd419',
  K_s2r: '18a85c29b888a3fcbc4369c987cb18afe52a6078f120873926bae8a72b7544eb',
  K_r2s: '5db64106827fd823c0b687bbd4b4ccad9f0474000916700c8bc002733f9f8859',
};

test('docs/protocol.md §4.2: w, and an independent scrypt (@noble/hashes) agrees with node:crypto', async () => {
  const ctx = { curve: 'ed25519' as const, channel: '7' };
  const salt = passwordSalt(ctx);
  assert.equal(bytesToHex(salt), WORKED.salt);
  assert.equal(bytesToHex(passwordSalt({ curve: 'p256', channel: '7' })), '7473632d63726f632f76322f7370616b65322f7700703235360037');
  const w = await derivePasswordScalar('abandon-ability-able', ctx);
  assert.equal(w.toString(16).padStart(64, '0'), WORKED.w);
  const out = nobleScrypt(new TextEncoder().encode('abandon-ability-able'), salt, { N: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P, dkLen: SCRYPT_DKLEN });
  assert.equal((BigInt(`0x${bytesToHex(out)}`) % ED25519_SUITE.order).toString(16).padStart(64, '0'), WORKED.w);
});

test('docs/protocol.md §4.9: the worked example, through the handshake and the key schedule', () => {
  const ctx = { curve: 'ed25519' as const, channel: '7' };
  const w = BigInt(`0x${WORKED.w}`);
  const p = ED25519_SUITE.order;
  const a = BigInt(`0x${'11'.repeat(32)}`) % p;
  const b = BigInt(`0x${'22'.repeat(32)}`) % p;
  const sender = senderStart(w, ctx, () => a);
  assert.equal(bytesToHex(sender.x), WORKED.x);
  const recipient = recipientRespond(w, ctx, sender.x, () => b);
  assert.equal(bytesToHex(recipient.y), WORKED.y);
  assert.equal(bytesToHex(recipient.hh_k), WORKED.cB);
  const { h_k, keys } = sender.finish(recipient.y, recipient.hh_k);
  assert.equal(bytesToHex(h_k), WORKED.cA);
  assert.equal(bytesToHex(keys.senderToRecipient), WORKED.K_s2r);
  assert.equal(bytesToHex(keys.recipientToSender), WORKED.K_r2s);
  assert.deepEqual(recipient.verify(h_k), keys);
  const ks = spake2KeySchedule('ed25519', hex(WORKED.TT), handshakeAad(ctx));
  assert.deepEqual(
    [ks.Ke, ks.Ka, ks.KcA, ks.KcB, ks.cA, ks.cB].map(bytesToHex),
    [WORKED.Ke, WORKED.Ka, WORKED.KcA, WORKED.KcB, WORKED.cA, WORKED.cB],
  );
  // the transcript holds the shares and w (K = a*b*h*P)
  const K = ED25519_SUITE.P.multiply(a).multiply(b).multiply(ED25519_SUITE.cofactor);
  assert.equal(
    WORKED.TT,
    bytesToHex(spake2Transcript('ed25519', { idA: utf8('tsc-croc/v1/sender'), idB: utf8('tsc-croc/v1/recipient'), pA: sender.x, pB: recipient.y, K: K.toBytes(), w })),
  );
});

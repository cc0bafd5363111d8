// DC-09 messages captured from public sources (CRC and length checked against the messages themselves; the LF
// and CR around each are not in the sources' text and are added by the tests). Each names where it was published.

export interface Captured {
  text: string;
  source: string;
  /** what the capture is: a panel's message as received, or an edited one (an account blanked by its reporter) */
  note?: string;
}

/** pysiaalarm issue #72 (Sigma S PRO 32MB, 2025): an unencrypted NULL poll with an empty data block. */
export const NULL_SIGMA: Captured = { text: 'D3440015"NULL"0000L0#008312[]', source: 'github.com/eavanvalkenburg/pysiaalarm/issues/72' };

/** ioBroker.sia issue #11 (2019): a NULL poll with a bare line prefix `L` and a timestamp (the panel's clock, UTC). */
export const NULL_BARE_L: Captured = { text: 'BB86002C"NULL"0001L#7303658550[]_15:39:38,06-07-2019', source: 'github.com/schmupu/ioBroker.sia/issues/11' };

/** The NAK a receiver sent in the same log (ioBroker.sia issue #11): `"NAK"0000R0L0A0[]` and its own timestamp. */
export const NAK_IOBROKER: Captured = { text: '3C3B0025"NAK"0000R0L0A0[]_15:39:35,05-07-2019', source: 'github.com/schmupu/ioBroker.sia/issues/11' };

/** pysiaalarm PR #55 (Pima Force 144, 2023): ADM-CID 3407 (remote arm/disarm), header account shorter than the data's. */
export const ADM_PIMA_407: Captured = { text: '7449003F"ADM-CID"0078R1L0#AAAA[#00AAAA|3407 01 001]_01:59:16,09-21-2023', source: 'github.com/eavanvalkenburg/pysiaalarm/pull/55' };

/** pysiaalarm PR #55 (Pima Force 144, 2023): ADM-CID 3408 (quick arm). */
export const ADM_PIMA_408: Captured = { text: '9B2F0041"ADM-CID"1285R1L0#AAAAAA[#AAAAAA|3408 01 000]_13:26:16,10-04-2023', source: 'github.com/eavanvalkenburg/pysiaalarm/pull/55' };

/** home-assistant/core issue #131728 (2024): ADM-CID 3401 (closing by user), no timestamp. */
export const ADM_HA_401: Captured = { text: '77880027"ADM-CID"0068R0L0#AAA[#AAA|3401 01 070]', source: 'github.com/home-assistant/core/issues/131728' };

/** ioBroker.contactid issue #13 (Defender ST-7, 2020): ADM-CID 1302 (low system battery), 7-digit account. */
export const ADM_DEFENDER_302: Captured = { text: '9701002F"ADM-CID"2222R0L0#13E3186[#13E3186|1302 01 000]', source: 'github.com/schmupu/ioBroker.contactid/issues/13' };

/**
 * pysiaalarm issue #61 (2024): ADM-CID 3407 whose account the reporter replaced by "1111" before posting: the CRC
 * and the length are the original message's, so it no longer checks — a real "wrong CRC".
 */
export const ADM_EDITED: Captured = { text: 'A819003F"ADM-CID"0028R1L0#1111[#001111|3407 01 000]', source: 'github.com/eavanvalkenburg/pysiaalarm/issues/61', note: 'edited by its reporter' };

/**
 * pysiaalarm tests (tests/test_sia_package_cases.py, case_null): an encrypted NULL poll of account AAAB; it decrypts
 * under the 16-character key "AAAAAAAAAAAAAAAA" of that suite (hex 41×16) to pad + `]_18:24:52,07-05-2020`.
 */
export const NULL_ENCRYPTED: Captured = {
  text: '76D80055"*NULL"0000R0L0#AAAB[B4BC8B40D0E6D959D6BEA78E88CC0B2155741A3C44FBB96D476A3E557CAD64D9',
  source: 'github.com/eavanvalkenburg/pysiaalarm tests/test_sia_package_cases.py (case_null)',
};
export const NULL_ENCRYPTED_KEY = '41414141414141414141414141414141';
export const NULL_ENCRYPTED_AT = Date.UTC(2020, 6, 5, 18, 24, 52);

/** pysiaalarm tests (case_encrypted_adm): an encrypted ADM-CID of account 123F whose key is not published. */
export const ADM_ENCRYPTED_UNKNOWN_KEY: Captured = {
  text: 'D0850078"*ADM-CID"6879R0L0#123F[64F7ADD9BA9377DBF2C014BC709329BEEE345B5F20C60B7EB9D2C6B8C222666B13D0B4A114B448B0AC555FCC658DB6EE',
  source: 'github.com/eavanvalkenburg/pysiaalarm tests/test_sia_package_cases.py (case_encrypted_adm)',
};

/**
 * pysiaalarm tests (case_cl, case_code_jc): SIA-DCS with a correct CRC but a length field of 0078 for messages of
 * 0x34 / 0x33 characters (that suite does not check the length): a real "wrong length".
 */
export const SIA_WRONG_LENGTH: Captured = { text: 'E5D50078"SIA-DCS"6002L0#AAA[|Nri1/CL501]_14:12:04,09-25-2019', source: 'github.com/eavanvalkenburg/pysiaalarm tests/test_sia_package_cases.py (case_cl)' };

/** pysiaalarm tests (case_bug, issue #11 there): SIA-DCS with free text between carets; CRC and length as published. */
export const SIA_CARET_TEXT: Captured = { text: '9618004D"SIA-DCS"7960L0#123456[#123456|Nri1CL0^VX FRONTE ^]_22:40:48,04-11-2021', source: 'github.com/eavanvalkenburg/pysiaalarm tests/test_sia_package_cases.py (case_bug)', note: 'CRC and length do not match the text as published' };

/** ANSI/SIA DC-09 example account and routing (`9876R579BDFL789ABC#12345A`), as quoted in pysiaalarm's tests (case_adm_cid). */
export const ADM_DC09_EXAMPLE: Captured = { text: '87CD0037"ADM-CID"9876R579BDFL789ABC#12345A[#12345A|1110 00 129]_14:12:04,09-25-2011', source: 'github.com/eavanvalkenburg/pysiaalarm tests/test_sia_package_cases.py (case_adm_cid)', note: 'CRC and length do not match the text as published' };

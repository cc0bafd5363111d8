// Frames captured from real watches, as published in Traccar's decoder tests (Apache-2.0 test data; facts and
// frames only, no code). Each names its source: repository@commit, file, line. LEN is as captured: several SG frames
// carry a LEN off by a few bytes (see framer.ts), which is why they are here.

export interface Captured { frame: string; source: string }

export const CAPTURED = {
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:21 */
  alLteSos: { frame: '[3G*6907919734*003e*AL_LTE,170525,214118,V,0,N,0,E,0,0,0,0,0,22,0,0,00010000,0,0,0]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:21' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:29 */
  udLteNoFixWifi: { frame: '[3G*9705141740*00C2*UD_LTE,260723,185105,V,00.000000,,00.0000000,,0.00,0.0,0.0,0,100,67,0,0,00000000,2,0,605,1,10006,65799,14,10020,4104,4,3,,34:60:f9:ec:19:f8,-82,,98:48:27:55:18:20,-96,,34:e8:94:e4:06:18,-104,0.0]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:29' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:32 */
  alNoBits: { frame: '[SG*9059011020*0067*AL,240123,181628,V,54.427538,N,6.409275,W,0.00,0,0,0,19,90,0,0,00000000,1,1,234,10,55C0,3B882A2,132,,10]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:32' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:35 */
  ud2Sg: { frame: '[SG*9059011020*006b*UD2,240123,162011,A,54.427621,N,6.409190,W,0.00,0,0,8,19,88,0,0,00000000,1,1,FFFF,FFFF,FFFE,3B882A2,132,,00]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:35' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:42 */
  zjIndexAlRemoved: { frame: '[ZJ*689466020014198*0003*0113*AL,221121,085515,V,00.000000,N,000.000000,E,0,0,0,0,0,44,0,0,00100000,1,255,460,0,16399,234887445,0,6,WIFI00,68:77:24:1b:e7:a7,-59,WIFI01,68:77:24:1b:e3:30,-75,WIFI02,68:77:24:1b:e3:27,-75,WIFI03,00:41:d2:c0:f2:f1,-76,WIFI04,00:41:d2:c0:f2:f0,-77,WIFI05,68:77:24:1b:e3:d8,-82]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:42' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:49 */
  ud2Gps: { frame: '[3G*9031853319*004E*UD2,220322,055105,A,22.761162,N,114.360192,E,0,0,47,14,100,64,0,0,00000008,0,0]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:49' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:56 */
  ud2SgLenOff: { frame: '[SG*9159059735*0066*UD2,230322,082138,A,59.55285,N,016.66185,E,0.0,000,26,14,80,70,0,50,00000000,1,1,240,7,34505,80806406,,00]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:56' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:59 */
  udSgLenOff: { frame: '[SG*9059056143*0053*UD,251021,223408,A,41.46500,N,081.53128,W,0.926,000,0,00,70,70,0,50,00000000,0,1,,,,00]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:59' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:62 */
  udLteGpsWifi: { frame: '[3G*2104326058*00E9*UD_LTE,300621,135101,A,32.162652,N,34.888748,E,30.84,265.158,65.621,18,100,83,0,0,00000000,1,1,425,01,10223,8012811,100,3,ES4104,22:74:1d:39:64:ff,-46,metropoline-wifi,a8:3f:a1:e0:66:ba,-89,Egged.co.il,00:0c:42:51:cf:cd,-81,1.7055488]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:62' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:65 */
  alCustomerRemoved: { frame: '[3G*358839237678820*0122*ALCUSTOMER1,251120,081821,V,0.0,N,0.0,E,2.58,317.462,35.147,14,100,2,11089,0,00100008,1,1,460,01,42308,101992452,100,5,shizhou1,44:56:e2:03:ea:2a,-69,FART3,30:0d:9e:bb:fa:4d,-70,ZKY-A209,88:c3:97:c1:f4:7f,-73,ChinaNet-HNeD,e8:84:c6:21:7c:dc,-77,,30:45:96:10:14:5d,-79,1.2035439]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:65' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:68 */
  udWcdmaNoFix: { frame: '[3G*0304187088*0100*UD_WCDMA,100720,094202,V,0.0,N,0.0,E,22.0,0,-1,21,75,92,0,0,00000000,1,1,425,01,10192,1282125,75,5,Inet,04:f0:21:46:1f:57,-54,iNetSecurity,00:1e:42:25:2f:3e,-71,Gilad,58:d5:6e:9d:1b:af,-80,weekend,14:ae:db:cb:99:25,-82,advancemed1,04:f0:21:4c:c8:3e,-89,0.0]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:68' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:71 */
  alSosCells: { frame: '[3G*8809008845*00C0*AL,271219,094744,V,00.000000,N, 0.0000000,E,0.00,0.0,0.0,0,100,81,0,0,00010000,7,0,460,0,9336,3981,141,9336,3912,141,9336,3982,140,9765,4233,134,9765,4071,134,9765,4321,134,9336,4353,132,0,0.0]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:71' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:77 */
  zjIndexAlGps: { frame: '[ZJ*014111001332708*0075*0064*AL,040418,052156,A,22.536207,N,113.938673,E,0,0,0,5,100,82,1000,50,00100000,1,255,460,0,9340,3663,35]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:77' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:80 */
  udSgStale: { frame: '[SG*352661090143150*006C*UD,150817,132115,V,28.435142,N,81.354333,W,2.2038,000,99,00,70,100,0,50,00000000,1,1,310,260,1091,30082,139,,00]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:80' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:89 */
  alFall: { frame: '[3G*8308373902*0080*AL,230817,095346,A,47.083950,N,15.4821850,E,7.60,273.8,0.0,4,15,44,0,0,00200010,2,255,232,1,7605,42530,118,7605,58036,119,0,65.8]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:89' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:95 */
  wt: { frame: '[3G*6005412902*011F*WT,170517,133811,V,18.512200,N,73.7750283,E,0.00,0.0,0.0,0,92,82,4262,0,00000010,2,1,404,22,10125,8301,141,10125,13921,122,5,Skynet,28:c6:8e:be:87:c0,-60,Intel Wi-Fi,4c:60:de:32:3d:38,-70,Nirvanic-2,40:e3:d6:4a:d9:c2,-73,A4-Guest,40:e3:d6:4a:d9:c4,-73,A4Idatix,40:e3:d6:4a:d9:c3,-73,13.8]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:95' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:101 */
  alSgLenOff: { frame: '[SG*9051004074*0058*AL,120117,145602,V,40.058413,N,76.336618,W,11.519,188,99,00,01,80,0,50,00000000,0,1,0,0,,10]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:101' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:110 */
  ud2NegativeCoords: { frame: '[3G*6105117105*008D*UD2,210716,231601,V,-33.480366,N,-70.7630692,E,0.00,0.0,0.0,0,100,34,0,0,00000000,3,255,730,2,29731,54315,167,29731,54316,162,29731,54317,145]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:110' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:120 */
  lkTwoFields: { frame: '[SG*9081000548*0009*LK,0,100]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:120' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:129 */
  tkq: { frame: '[3G*8800000015*0003*TKQ]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:129' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:135 */
  lkBare: { frame: '[SG*8800000015*0002*LK]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:135' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:138 */
  lkFull: { frame: '[3G*4700186508*000B*LK,0,10,100]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:138' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:141 */
  udSgGps: { frame: '[SG*8800000015*0087*UD,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,0000,4,1,460,0,9360,4082,131,9360,4092,148,9360,4091,143,9360,4153,141]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:141' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:151 */
  alLowBatteryState: { frame: '[SG*8800000015*0087*AL,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,0001,4,1,460,0,9360,4082,131,9360,4092,148,9360,4091,143,9360,4153,141]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:151' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:154 */
  pulse: { frame: '[CS*8800000015*0008*PULSE,72]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:154' },
  /** traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:172 */
  udNoFixWifiOnly: { frame: '[3G*8800000015*00DD*UD,010120,025946,V,0.0,N,0.0,E,22.0,0,-1,0,100,98,0,0,00000000,0,5,eduroam,f4:db:e6:d2:a8:00,-53,eduroam,f4:db:e6:da:d0:80,-79,eduroam,78:0c:f0:24:f9:80,-82,Lions,b0:be:76:0a:05:9a,-82,tubs-guest,f4:db:e6:d2:a8:01,-53,0.0]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolDecoderTest.java:172' },
} satisfies Record<string, Captured>;

/** A stream of four frames in one read (WatchFrameDecoderTest.java:15), hex as captured */
export const STREAM_HEX = { hex: '5b33472a393730353134313734302a303030392a4c4b2c302c302c35335d5b33472a393730353134313734302a303035412a55442c3139303732332c3139303730372c412c33362e3831353130392c4e2c31302e313739323331322c452c382e32342c3132372e392c32312e302c352c3130302c35332c302c302c30303030303030302c302c302c35382e305d5b33472a393730353134313734302a303030332a544b515d5b33472a393730353134313734302a303030392a4c4b2c302c302c35335d', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchFrameDecoderTest.java:15' };

/** A Wi-Fi SSID sent with raw brackets, `[LG_Wall-Mount A/C]`, and a LEN of 0x13D for 308 bytes (WatchFrameDecoderTest.java:19) */
export const BRACKET_SSID_HEX = { hex: '5b33472a3838303930303234322a303133442a55442c3132303632332c3134303032302c412c34382e3934393237332c4e2c20342e333738333036302c452c31382e35362c34332e382c302e302c31322c3130302c37362c3232363132302c302c30303030303030302c322c3235352c3230342c382c333131302c35353032352c3134362c333133302c34393239372c3132342c352c42616e67696e67576966692c33343a61313a65643a65313a39313a34662c2d37312c42415220576946692c33363a61323a65313a65643a61313a64652c2d37322c4e6574776f726b576966692c32363a64653a61313a65643a65313a61302c2d37332c46696265722c33363a61313a65643a65313a39313a34662c2d37352c5b4c475f57616c6c2d4d6f756e7420412f435d653732352c36363a61313a65643a65313a65373a32352c2d38322c31352e305d', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchFrameDecoderTest.java:19' };

/** ZJ index form keepalive (WatchFrameDecoderTest.java:35) */
export const ZJ_LK = { frame: '[ZJ*014111001350304*0034*0009*LK,0,0,19]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchFrameDecoderTest.java:35' };

/** Voice (TK) with all five escapes and a 0xff byte; LEN 0x0e counts the bytes unescaped (WatchFrameDecoderTest.java:39) */
export const TK_ESCAPED = { bytes: () => Buffer.concat([Buffer.from('[CS*1234567890*000e*TK,#!AMR'), Buffer.from('7d017d027d037d047d05ff', 'hex'), Buffer.from(']')]), unescaped: Buffer.concat([Buffer.from('TK,#!AMR'), Buffer.from('7d5b5d2c2aff', 'hex')]), source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchFrameDecoderTest.java:39' };

/** The same escapes from a server-side encoder, LEN 0x0d counting the bytes as sent (WatchProtocolEncoderTest.java:38) */
export const TK_ESCAPED_SENT_LEN = { bytes: () => Buffer.concat([Buffer.from('[CS*123456789012345*000d*TK,'), Buffer.from('7d017d027d037d047d05', 'hex'), Buffer.from(']')]), source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolEncoderTest.java:38' };

/** Commands as Traccar encodes them (WatchProtocolEncoderTest.java) */
export const ENCODED = {
  sos1: { frame: '[CS*123456789012345*000e*SOS1,123456789]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolEncoderTest.java:26' },
  message: { frame: '[CS*123456789012345*0018*MESSAGE,0074006500780074]', source: 'traccar/traccar@9e5c458 src/test/java/org/traccar/protocol/WatchProtocolEncoderTest.java:50' },
};

// Captured JT/T 808 frames, hex as received. Source of each: the Traccar project's decoder tests
// (github.com/traccar/traccar, src/test/java/org/traccar/protocol/Jt808ProtocolDecoderTest.java, formerly
// HuaBaoProtocolDecoderTest.java; the frame decoder's in Jt808FrameDecoderTest.java, the encoder's in
// Jt808ProtocolEncoderTest.java). Frames only; no code was copied.

export const CAPTURED = {
  /** Traccar Jt808ProtocolDecoderTest: 2013 register 0x0100, phone 013511221122, serial 5 */
  register2013: '7E0100002D013511221122000500000000373031303748422D52303347424400000000000000000000003233363631303402CBD5424136383630387E',
  /** Traccar Jt808ProtocolDecoderTest: 2013 authenticate 0x0102 of the same terminal, code "authentication", serial 6 */
  auth2013: '7E0102000E013511221122000661757468656E7469636174696F6E3F7E',
  /**
   * Traccar Jt808ProtocolDecoderTest: 0x0200 of the same terminal whose check code is wrong (0xD0; the header and body
   * XOR to 0xF0): Traccar does not verify check codes, eldergate refuses it ('bad-checksum')
   */
  locationBadCheck2013: '7E02000032013511221122000700000000000C000301578CC006CA3A5C00470000000014072317201501040000000030011631010BD07E',
  /** Traccar Jt808ProtocolDecoderTest: 2019 register 0x0100 (version flag, version 1, phone 00000866496077582164) */
  register2019: '7e0100405c010000086649607758216452180000000000000000000000000000004d443330300000000000000000000000000000000000000000000000000038363634393630373735383231363400000000000000000000000000000004000000000000000000000000000000007a7e',
  /** Traccar Jt808ProtocolDecoderTest: 2019 batch 0x0704 of the same terminal, one item, 14 satellites */
  batch2019: '7e0704402d0100000866496077582164881d0001000028000000000000000701a00192091f2a4700160000000226050916422701040000258230010031010e507e',
  /**
   * Traccar Jt808ProtocolDecoderTest: 2013 0x0200 with alarm bit 0 (emergency), status 0x0A (located, west),
   * 50.871735 N 1.255923 W, 2013-04-12 16:49:52 GMT+8, mileage 1.8 km
   */
  sos2013: '7e0200002e094027587492000a000000010000000a03083db7001329f3000000140000130412164952010400000012360a0002341502cb0c20085c107e',
  /** Traccar Jt808ProtocolDecoderTest: 2013 0x0200 with the vendor battery item 0x06 = 62 % */
  battery06: '7e0200001f01207646327900400000000000006002015c7ab706d20469003b0000000025040216362606013e6b7e',
  /** Traccar Jt808ProtocolDecoderTest: 2013 0x0200 with the vendor item 0xE4 (charging, 99 %), signal 0x30 = 28, 9 satellites */
  batteryE4: '7e02000048051160004464000d00000000000c00020159885e06cbf34400000000000020080718072201040000000130011c310109e4020063e50100e60100e7080000000000000000ee0a01cc01262c009a6743001e7e',
  /** Traccar Jt808ProtocolDecoderTest: 2013 heartbeat 0x0002, phone 043048325465, serial 0x00B7 */
  heartbeat2013: '7e0002000004304832546500b7ca7e',
  /** Traccar Jt808ProtocolDecoderTest: 0x0102 whose terminal id is not BCD (a vendor's binary IMEI): refused 'bad-phone' */
  nonBcdPhone: '7e010200204f07788ef67601824f4459344f544d314d4459774d4441314d444977626d5633553235536457786cba7e',
  /** Traccar Jt808FrameDecoderTest: escaped 7E 30 7D02 08 7D01 55 7E, and the same after two bytes of garbage */
  escaped: '7e307d02087d01557e',
  escapedUnescaped: '7e307e087d557e',
  escapedAfterGarbage: '24247e307d02087d01557e',
  /**
   * Traccar Jt808ProtocolEncoderTest: platform text 0x8300, flag 0x01, "Test, Command, 123#", serial 0, terminal id bytes
   * 0b3a73ce2ff2 (not BCD: Traccar's packing of an IMEI)
   */
  text8300: '7e830000140b3a73ce2ff2000001546573742c20436f6d6d616e642c2031323323a57e',
  /**
   * xtream-codec (github.com/hylexus/xtream-codec; read in the fork makeclan/xtream-codec,
   * debug/jt/jt-808-server-spring-boot-starter-debug-ui/src/utils/codec-utils.ts, BuiltinMessage8300): 0x8300 2013,
   * flag 0x01, text "HelloWorld 汉字 GBK 编码" in GBK, phone 013912344323, serial 0
   */
  text8300Gbk2013: '7e8300001901391234432300000148656c6c6f576f726c6420babad7d62047424b20b1e0c2ebf27e',
  /** the same source, BuiltinMessage8300V2019: 2019 header (version 1, phone 00000000013912344329), flag 0x01, text type 1 */
  text8300Gbk2019: '7e8300401a01000000000139123443290000010148656c6c6f576f726c6420babad7d62047424b20b1e0c2ebbb7e',
  /**
   * the same source, BuiltinMessage8401: phone book, type 1, 3 contacts; the first is flag 3, 13911112222, "张三"
   * (GBK d5c5 c8fd)
   */
  phoneBook8401Gbk2019: '7e8401403c010000000001391234432900000103030b313339313131313232323204d5c5c8fd020b313339313131313333333308d5c5c8fdb7e8d7d3010b313339313131313636363604c0eecbc4cc7e',
} as const;

export const hex = (h: string): Buffer => Buffer.from(h, 'hex');

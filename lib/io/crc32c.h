/* crc32c.h - CRC-32C (Castagnoli), the checksum of traind's durable files.
 *
 * CRC-32C rather than CRC-32: the same cost, better error detection on the
 * bursts disks produce, and the polynomial iSCSI, ext4 and LevelDB use, so
 * any of their tools can check a file by hand. Software, slicing by 8
 * (about 1-2 GB/s): saving the checkpoint costs more than checking it.
 */
#ifndef TD_IO_CRC32C_H
#define TD_IO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over n bytes: td_crc32c(td_crc32c(0, a, n), b, m)
 * is the CRC of a followed by b. td_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t td_crc32c(uint32_t crc, const void *data, size_t n);

#endif

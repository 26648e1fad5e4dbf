#pragma once
/* msgpack forms of records, models, fingerprints and jobs: the field names are the protocol. */

#include <msgpack.h>

#include "schedules/sc_frontier.h"
#include "schedules/sc_hardware.h"
#include "searchd/sd_daemon.h"

/// One frontier record of model `m`, with its width (heads and neurons kept) when narrowed.
void sd_pack_record(msgpack_packer *pk, const sd_model *m, const sc_record *r);
void sd_pack_model(msgpack_packer *pk, const sd_model *m);
void sd_pack_hw(msgpack_packer *pk, const sc_hw *hw);
/// job.status's form (also job.done's params).
void sd_pack_job(msgpack_packer *pk, sd_job *j);
/// job.progress's params: the job's progress as last reported.
void sd_pack_progress(msgpack_packer *pk, sd_job *j);

//! How each column of a table's files is encoded and compressed, decided once per delivery.
//!
//! A lake partitioned by day holds many small files, and zstd's fixed cost per page (building
//! its Huffman and FSE tables) then outweighs what it saves on columns that are already dense
//! after encoding: on flights.csv, 15 of 21 columns shrank by less than 7%, and compressing them
//! was a sixth of the whole load's CPU. So the first rows of a delivery are encoded in memory
//! as a sample, and a column whose sample zstd does not shrink by at least `MIN_SAVING` is
//! written uncompressed; float columns are sampled with and without a dictionary first. The
//! decisions are per column and per delivery; readers see ordinary Parquet files whose column
//! chunks name their own encodings and codec.

use std::collections::HashSet;

use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;

use crate::error::{Context, Result};

/// Rows gathered before deciding: fewer say little about a column's compressibility. Files
/// opened before the decision compress every column.
const MIN_SAMPLE_ROWS: usize = 1024;
/// At most this many rows are encoded for the sample.
const MAX_SAMPLE_ROWS: usize = 16 * 1024;
/// The share of a column's encoded size zstd must take off for the column to stay compressed.
const MIN_SAVING: f64 = 0.10;
/// And the bytes it must save in each file's chunk of the column. zstd's fixed cost per page
/// (its Huffman and FSE tables: ~120,000 instructions a page on flights.csv) buys little below
/// this, and a file takes whole 4 KiB blocks anyway. With one file per day of flights.csv
/// (~920 rows), four of the seven columns that shrank by a tenth saved 20-260 bytes a file;
/// left uncompressed, the load took 2% fewer instructions and the lake grew by 2%.
const MIN_BYTES_SAVED_PER_FILE: f64 = 512.0;

/// The writer properties of one table's files in one delivery.
pub struct ColumnCodecs {
    properties: WriterProperties,
    /// Rows kept until there are enough to decide; `None` once decided.
    sample: Option<Sample>,
}

#[derive(Default)]
struct Sample {
    batches: Vec<RecordBatch>,
    /// The files (partitions) the sampled rows go to: the sample's rows per file foretell the
    /// size of the files' column chunks.
    files: HashSet<String>,
}

impl ColumnCodecs {
    pub fn new(base: &WriterProperties, schema: &SchemaRef) -> Self {
        let properties = with_column_encodings(base, schema);
        let compressed = schema.fields().iter().any(|f| {
            properties.compression(&ColumnPath::from(f.name().as_str()))
                != Compression::UNCOMPRESSED
        });
        ColumnCodecs {
            properties,
            sample: compressed.then(Sample::default),
        }
    }

    /// The properties for a file opened now.
    pub fn properties(&self) -> &WriterProperties {
        &self.properties
    }

    /// Take rows bound for `file` (its partition) into the sample; once it is big enough,
    /// decide which columns to compress.
    pub fn observe(&mut self, batch: &RecordBatch, file: &str) -> Result<()> {
        let Some(sample) = &mut self.sample else {
            return Ok(());
        };
        let held: usize = sample.batches.iter().map(RecordBatch::num_rows).sum();
        let take = batch.num_rows().min(MAX_SAMPLE_ROWS - held);
        sample.batches.push(batch.slice(0, take));
        if !sample.files.contains(file) {
            sample.files.insert(file.to_string());
        }
        if held + take < MIN_SAMPLE_ROWS {
            return Ok(());
        }
        let rows = concat_batches(&batch.schema(), sample.batches.iter())
            .context(|| "gathering rows to sample the lake's compression".into())?;
        let rows_per_file = rows.num_rows() as f64 / sample.files.len().max(1) as f64;
        self.sample = None;
        let properties =
            plain_where_dictionaries_do_not_pay(&self.properties, &rows, rows_per_file)?;
        self.properties = compress_where_it_pays(&properties, &rows, rows_per_file)?;
        Ok(())
    }
}

/// The Parquet metadata of `sample` written with `properties`.
fn encode_sample(properties: &WriterProperties, sample: &RecordBatch) -> Result<ParquetMetaData> {
    let mut writer = ArrowWriter::try_new(Vec::new(), sample.schema(), Some(properties.clone()))
        .context(|| "starting the lake's encoding sample".into())?;
    writer
        .write(sample)
        .context(|| "encoding the lake's encoding sample".into())?;
    writer
        .close()
        .context(|| "finishing the lake's encoding sample".into())
}

/// Float and string columns are dictionary-encoded by default, which pays for prices, codes and
/// other values that repeat within a file; measured or computed values seldom do, nor do ids in
/// small files, and interning each one then costs more than the dictionary saves (on
/// flights.csv: speed_mph, and tailnum in files of one day). The sample is encoded both ways,
/// compressed, in row groups of `rows_per_file` rows (each with its own dictionary, as each
/// file has); a float column whose dictionary does not take a tenth off, and a string column
/// whose dictionary makes it bigger, are written plain.
fn plain_where_dictionaries_do_not_pay(
    properties: &WriterProperties,
    sample: &RecordBatch,
    rows_per_file: f64,
) -> Result<WriterProperties> {
    let candidates: Vec<usize> = sample
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8)
                || f.data_type().is_floating()
        })
        .filter(|(_, f)| properties.dictionary_enabled(&ColumnPath::from(f.name().as_str())))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return Ok(properties.clone());
    }
    let projected = sample
        .project(&candidates)
        .context(|| "sampling the lake's float and string columns".into())?;
    let file_sized = properties
        .clone()
        .into_builder()
        .set_max_row_group_row_count(Some((rows_per_file.round() as usize).max(1)))
        .build();
    let mut plain = file_sized.clone().into_builder();
    for field in projected.schema().fields() {
        plain = plain.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
    }
    let plain = plain.build();
    let sizes = |metadata: &ParquetMetaData| -> Vec<i64> {
        (0..projected.num_columns())
            .map(|c| {
                metadata
                    .row_groups()
                    .iter()
                    .map(|g| g.column(c).compressed_size())
                    .sum()
            })
            .collect()
    };
    let with_dictionary = sizes(&encode_sample(&file_sized, &projected)?);
    let without = sizes(&encode_sample(&plain, &projected)?);
    let mut builder = properties.clone().into_builder();
    for ((field, size), plain_size) in projected
        .schema()
        .fields()
        .iter()
        .zip(with_dictionary)
        .zip(without)
    {
        // Readers group and filter dictionary-encoded strings by their codes, so a string column
        // keeps its dictionary unless the dictionary makes it bigger.
        let required_saving = if field.data_type().is_floating() {
            MIN_SAVING
        } else {
            0.0
        };
        if size as f64 > (1.0 - required_saving) * plain_size as f64 {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    Ok(builder.build())
}

/// Encode `sample` with `properties` and turn compression off for the columns it hardly
/// shrinks, in files of `rows_per_file` rows.
fn compress_where_it_pays(
    properties: &WriterProperties,
    sample: &RecordBatch,
    rows_per_file: f64,
) -> Result<WriterProperties> {
    let metadata = encode_sample(properties, sample)?;
    let mut builder = properties.clone().into_builder();
    let rows = sample.num_rows() as f64;
    for row_group in metadata.row_groups() {
        for column in row_group.columns() {
            let (before, after) = (column.uncompressed_size(), column.compressed_size());
            let saved = before.saturating_sub(after) as f64;
            let saved_per_file = saved / rows * rows_per_file;
            if saved < MIN_SAVING * before as f64 || saved_per_file < MIN_BYTES_SAVED_PER_FILE {
                builder = builder.set_column_compression(
                    column.column_path().clone(),
                    Compression::UNCOMPRESSED,
                );
            }
        }
    }
    Ok(builder.build())
}

/// Integers, dates and timestamps are written DELTA_BINARY_PACKED instead of dictionary-encoded:
/// they are mostly ordered or clustered (ids, years, times of day, event times), so the deltas
/// take a few bits each and zstd has little left to do. On flights.csv this took a quarter off
/// the lake's encoding instructions and 12% off its size. DuckDB, pyarrow and Spark read it.
fn with_column_encodings(props: &WriterProperties, schema: &SchemaRef) -> WriterProperties {
    let mut builder = props.clone().into_builder();
    for field in schema.fields() {
        if matches!(
            field.data_type(),
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
        ) {
            let column = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::DELTA_BINARY_PACKED);
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::parquet::basic::ZstdLevel;

    use super::*;

    /// `noise` is pseudo-random (nothing for zstd after bit-packing); `hour` repeats each value
    /// for a hundred rows, as event times of a sorted export do.
    fn batch(rows: i64) -> RecordBatch {
        batch_from(rows, 0x9E37_79B9_7F4A_7C15)
    }

    fn batch_from(rows: i64, seed: u64) -> RecordBatch {
        let mut state = seed;
        let noise: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 1) as i64
        })));
        let hour: ArrayRef = Arc::new(TimestampMicrosecondArray::from_iter_values(
            (0..rows).map(|i| i / 100 * 3_600_000_000),
        ));
        RecordBatch::try_from_iter([("noise", noise), ("hour", hour)]).unwrap()
    }

    fn zstd() -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
            .build()
    }

    fn codec(codecs: &ColumnCodecs, column: &str) -> Compression {
        codecs.properties().compression(&ColumnPath::from(column))
    }

    fn dictionary(codecs: &ColumnCodecs, column: &str) -> bool {
        codecs
            .properties()
            .dictionary_enabled(&ColumnPath::from(column))
    }

    #[test]
    fn columns_zstd_hardly_shrinks_are_written_uncompressed_once_the_sample_is_big_enough() {
        let sample = batch(600);
        let mut codecs = ColumnCodecs::new(&zstd(), &sample.schema());
        codecs.observe(&sample, "").unwrap();
        assert!(
            matches!(codec(&codecs, "noise"), Compression::ZSTD(_)),
            "600 rows are too few to decide on"
        );
        codecs.observe(&batch_from(600, 7), "").unwrap();
        assert_eq!(codec(&codecs, "noise"), Compression::UNCOMPRESSED);
        assert!(matches!(codec(&codecs, "hour"), Compression::ZSTD(_)));
        assert_eq!(
            codecs.properties().encoding(&ColumnPath::from("hour")),
            Some(Encoding::DELTA_BINARY_PACKED)
        );
    }

    /// The same rows sampled as one file, then spread over files of ten rows: what zstd saves
    /// on `hour` pays for its cost per page in the big file, not in the small ones.
    #[test]
    fn a_column_that_saves_little_per_file_is_left_uncompressed() {
        let rows = batch(12_000);
        let mut one_file = ColumnCodecs::new(&zstd(), &rows.schema());
        one_file.observe(&rows, "").unwrap();
        assert!(matches!(codec(&one_file, "hour"), Compression::ZSTD(_)));
        let mut small_files = ColumnCodecs::new(&zstd(), &rows.schema());
        for start in (0..rows.num_rows()).step_by(10) {
            let file = format!("day={}", start / 10);
            small_files.observe(&rows.slice(start, 10), &file).unwrap();
        }
        assert_eq!(codec(&small_files, "hour"), Compression::UNCOMPRESSED);
    }

    #[test]
    fn files_written_with_the_decided_codecs_read_back_the_same_rows() {
        let rows = batch(5_000);
        let mut codecs = ColumnCodecs::new(&zstd(), &rows.schema());
        codecs.observe(&rows, "").unwrap();
        let mut file = tempfile::tempfile().unwrap();
        let mut writer = ArrowWriter::try_new(
            file.try_clone().unwrap(),
            rows.schema(),
            Some(codecs.properties().clone()),
        )
        .unwrap();
        writer.write(&rows).unwrap();
        let metadata = writer.close().unwrap();
        let written: Vec<Compression> = metadata.row_groups()[0]
            .columns()
            .iter()
            .map(|c| c.compression())
            .collect();
        assert_eq!(written[0], Compression::UNCOMPRESSED);
        assert!(matches!(written[1], Compression::ZSTD(_)));
        std::io::Seek::rewind(&mut file).unwrap();
        let read: Vec<RecordBatch> =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                file,
            )
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(concat_batches(&rows.schema(), &read).unwrap(), rows);
    }

    #[test]
    fn a_lake_without_compression_takes_no_sample() {
        let rows = batch(5_000);
        let plain = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .build();
        let mut codecs = ColumnCodecs::new(&plain, &rows.schema());
        codecs.observe(&rows, "").unwrap();
        assert!(codecs.sample.is_none());
        assert_eq!(codec(&codecs, "hour"), Compression::UNCOMPRESSED);
    }

    /// Sampled as files of 1,000 rows: `id` repeats across files but not within one, `code`
    /// takes one of 16 names in every row.
    #[test]
    fn strings_that_seldom_repeat_within_a_file_are_written_plain_and_codes_keep_their_dictionary()
    {
        let mut state: u64 = 7;
        let id: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..4_000).map(|i| format!("N{:05}", i * 7_919 % 3_000)),
        ));
        let code: ArrayRef = Arc::new(StringArray::from_iter_values((0..4_000).map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            format!("category-{:X}", state >> 60)
        })));
        let rows = RecordBatch::try_from_iter([("id", id), ("code", code)]).unwrap();
        let mut codecs = ColumnCodecs::new(&zstd(), &rows.schema());
        for start in (0..rows.num_rows()).step_by(1_000) {
            let file = format!("day={}", start / 1_000);
            codecs.observe(&rows.slice(start, 1_000), &file).unwrap();
        }
        assert!(!dictionary(&codecs, "id"));
        assert!(dictionary(&codecs, "code"));
    }

    #[test]
    fn floats_that_seldom_repeat_are_written_plain_and_prices_keep_their_dictionary() {
        let mut state: u64 = 42;
        let measured: ArrayRef = Arc::new(Float64Array::from_iter_values((0..4_000).map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 11) as f64 / 1e6
        })));
        let price: ArrayRef = Arc::new(Float64Array::from_iter_values((0..4_000).map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            [9.99, 14.5, 120.0, 0.75][(state >> 62) as usize]
        })));
        let rows = RecordBatch::try_from_iter([("measured", measured), ("price", price)]).unwrap();
        let mut codecs = ColumnCodecs::new(&zstd(), &rows.schema());
        assert!(
            codecs
                .properties()
                .dictionary_enabled(&ColumnPath::from("measured"))
        );
        codecs.observe(&rows, "").unwrap();
        assert!(!dictionary(&codecs, "measured"));
        assert!(dictionary(&codecs, "price"));
    }
}

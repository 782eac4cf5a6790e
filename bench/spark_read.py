"""Reads a caudal lake table with Spark as a Hive-partitioned dataset and prints what it sees.

Usage: python bench/spark_read.py LAKE_TABLE_DIR PARTITION_COLUMN [EXPECTED_ROWS]
Prints a checksum over every value. Exits non-zero if Spark cannot read it, or the row count differs from EXPECTED_ROWS.
"""
import sys

from pyspark.sql import SparkSession

path, column = sys.argv[1], sys.argv[2]
expected = int(sys.argv[3]) if len(sys.argv) > 3 else None
spark = (
    SparkSession.builder.master("local[1]")
    .appName("caudal-lake-read")
    .config("spark.ui.enabled", "false")
    .config("spark.driver.host", "127.0.0.1")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
df = spark.read.parquet(path)
rows = df.count()
kind = dict(df.dtypes)[column]
parts = df.select(column).distinct().count()
# A hash over every value of every row: Spark must decode each column, not only count rows
# from the file footers. The same rows give the same checksum whatever the encoding.
checksum = df.selectExpr("sum(pmod(xxhash64(*), 1000000007)) AS h").collect()[0]["h"]
print(f"spark: {path}: {rows} rows, {parts} partitions, {column} read as {kind}, checksum {checksum}")
spark.stop()
if expected is not None and rows != expected:
    print(f"spark: expected {expected} rows")
    sys.exit(1)

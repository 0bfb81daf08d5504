"""The SQL functions ``classify_image`` and ``image_label`` and their registration.

Each is a scalar pandas UDF ``f(content, model, on_error)`` over Arrow batches, exposed to
SQL as ``name(content[, model])`` through ``sqlext.ImageFunctionBuilder`` (sqlext/java),
which checks arguments at analysis time, passes the session's ``sqlext.on_error`` and
makes NULL content give NULL.  The builders are registered in the driver's session and
injected into the session extensions, so every session created afterwards — every JDBC
connection of the Thrift server — has them.
"""
import pandas as pd
from pyspark.sql.functions import pandas_udf

from . import predict, prediction_cache

RESULT_TYPE = "struct<label:string,probability:double,model:string>"
# the JVM prediction cache's call: its probe's struct<digest, content> in, the digest back out for its fill
KEYED_RESULT_TYPE = "struct<label:string,probability:double,model:string,digest:binary>"
ON_ERROR = "sqlext.on_error"

_ARGUMENTS = """
    Arguments:
      * content - BINARY, the encoded image (JPEG, PNG, WebP, BMP, TIFF or GIF; EXIF rotation is
          honoured), e.g. a column read by `sqlext ingest` or Spark's binaryFile source. NULL,
          undecodable bytes and images over the server's pixel limit (SQLEXT_MAX_IMAGE_PIXELS)
          give NULL (or, after `SET sqlext.on_error=fail`, an error naming the reason).
      * model - optional STRING, 'name' (its latest version) or 'name:version'. Omitted: the
          server's default model. An unknown name is an error that lists the models that exist.
  """

DOCS = {
    "classify_image": dict(
        usage="_FUNC_(content[, model]) - Classifies an image with a model bundle and returns "
              "STRUCT<label: STRING, probability: DOUBLE, model: STRING> (model = 'name:version').",
        examples="""
    Examples:
      > SELECT path, _FUNC_(content).label, _FUNC_(content).probability FROM demo.photos;
      > SELECT path FROM demo.photos WHERE _FUNC_(content, 'imagenet').probability > 0.5;
      > SELECT _FUNC_(content, 'antsbees:1') FROM demo.photos;
  """),
    "image_label": dict(
        usage="_FUNC_(content[, model]) - Returns the top-1 label (STRING) a model bundle "
              "predicts for an image; a flat column that every JDBC/ODBC client and BI tool reads.",
        examples="""
    Examples:
      > SELECT path, _FUNC_(content) AS label FROM demo.photos;
      > SELECT _FUNC_(content) AS label, count(*) FROM demo.photos GROUP BY 1;
      > SELECT _FUNC_(content, 'antsbees:2') FROM demo.photos;
  """),
}


def _setting(on_error: pd.Series) -> str:
    """The session's ``sqlext.on_error``, passed by the JVM builder as a literal in every row."""
    return on_error.iloc[0] if len(on_error) else "null"


def build(catalog) -> dict:
    """Return {sql name: pandas UDF (content, model, on_error)} closing over ``catalog``."""

    @pandas_udf(RESULT_TYPE)
    def classify_image(content: pd.Series, model: pd.Series, on_error: pd.Series) -> pd.DataFrame:
        return predict.classify(catalog, content, model, _setting(on_error))

    @pandas_udf("string")
    def image_label(content: pd.Series, model: pd.Series, on_error: pd.Series) -> pd.Series:
        return predict.classify(catalog, content, model, _setting(on_error))["label"]

    return {"classify_image": classify_image, "image_label": image_label}


def build_keyed(catalog):
    """The pandas UDF behind both functions when the JVM prediction cache serves the call (see
    ``sqlext.ImageFunctionBuilder.withCache``): ``probe`` is ``struct<digest, content>``, content NULL
    for the images the JVM level answers; the digest keys the workers' cache levels and is returned
    for the JVM level, so no side hashes an image twice."""

    @pandas_udf(KEYED_RESULT_TYPE)
    def classify_keyed(probe: pd.DataFrame, model: pd.Series, on_error: pd.Series) -> pd.DataFrame:
        out = predict.classify(catalog, probe["content"], model, _setting(on_error),
                               digests=list(probe["digest"].values))
        out["digest"] = probe["digest"].values
        return out

    return classify_keyed


def _expression_info(jvm, name):
    doc = DOCS[name]
    return jvm.org.apache.spark.sql.catalyst.expressions.ExpressionInfo(
        f"sqlext.functions.{name}", None, name, doc["usage"], _ARGUMENTS, doc["examples"],
        "", "", "", "", "python_udf")


def cache_tags(catalog) -> dict:
    """Model spec as SQL may spell it ('' = the default) -> the JVM prediction cache's tag of its bundle."""
    specs = [""] + sorted(catalog.latest) + sorted(catalog.payloads)
    tags = {}
    for spec in specs:
        try:
            key = catalog.resolve(spec or None)
        except (KeyError, ValueError):
            continue  # e.g. no default model: such calls fail at run time with their own message
        if key in catalog.payloads:
            tags[spec] = prediction_cache.model_tag(catalog.payloads[key].value[0]).hex()
    return tags


def register(spark, catalog) -> None:
    """Register the functions in ``spark`` and in every session created from it later."""
    jvm, jss = spark._jvm, spark._jsparkSession
    registry = jss.sessionState().functionRegistry()
    names = sorted(set(catalog.payloads) | set(catalog.latest))
    known = spark.sparkContext._gateway.new_array(jvm.java.lang.String, len(names))
    for i, model in enumerate(names):
        known[i] = model
    available = ", ".join(sorted(catalog.latest)) or "none (run `sqlext models import` or `sqlext train`)"
    refused = jvm.java.util.HashMap()  # a refused bundle's name -> why, for the analysis-time error
    for spec, reason in getattr(catalog, "refused", {}).items():
        refused.put(spec, reason)
    udfs, keyed = build(catalog), build_keyed(catalog)
    tags = jvm.java.util.HashMap()
    for spec, tag in (cache_tags(catalog) if prediction_cache.enabled() else {}).items():
        tags.put(spec, tag)
    for name, udf in udfs.items():
        builder = jvm.sqlext.ImageFunctionBuilder(name, udf._unwrapped._judf, known, available, refused)
        builder.withCache(keyed._unwrapped._judf, tags)
        ident = jvm.org.apache.spark.sql.catalyst.FunctionIdentifier(name)
        info = _expression_info(jvm, name)
        registry.registerFunction(ident, info, builder)
        jss.extensions().injectFunction(jvm.scala.Tuple3(ident, info, builder))

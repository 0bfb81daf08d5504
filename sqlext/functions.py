"""The SQL functions ``classify_image`` and ``image_label`` and their registration.

Both are scalar pandas UDFs over Arrow batches.  Registering them in the driver's
session and then copying their function builders into the session extensions
makes them exist in every session created afterwards, i.e. in every JDBC
connection of the Thrift server (which opens one Spark session per connection).
"""
import warnings

from pyspark.sql.functions import PandasUDFType, pandas_udf

from . import predict

RESULT_TYPE = "struct<label:string,probability:double,model:string>"

_ARGUMENTS = """
    Arguments:
      * content - BINARY, the encoded image (JPEG, PNG, BMP, TIFF, WebP, ...), e.g. a column read
          by `sqlext ingest` or Spark's binaryFile source. NULL or undecodable bytes give NULL.
      * model - optional STRING, 'name' (its latest version) or 'name:version'. Omitted: the
          server's default model. An unknown name is an error that lists the models that exist.
  """

DOCS = {
    "classify_image": dict(
        usage="_FUNC_(content[, model]) - Classifies an image with a model bundle and returns "
              "STRUCT<label: STRING, probability: DOUBLE, model: STRING> (model = 'name:version').",
        arguments=_ARGUMENTS,
        examples="""
    Examples:
      > SELECT path, _FUNC_(content).label, _FUNC_(content).probability FROM demo.photos;
      > SELECT path FROM demo.photos WHERE _FUNC_(content, 'imagenet').probability > 0.5;
      > SELECT _FUNC_(content, 'antsbees:1') FROM demo.photos;
  """),
    "image_label": dict(
        usage="_FUNC_(content[, model]) - Returns the top-1 label (STRING) a model bundle "
              "predicts for an image; a flat column that every JDBC/ODBC client and BI tool reads.",
        arguments=_ARGUMENTS,
        examples="""
    Examples:
      > SELECT path, _FUNC_(content) AS label FROM demo.photos;
      > SELECT _FUNC_(content) AS label, count(*) FROM demo.photos GROUP BY 1;
      > SELECT _FUNC_(content, 'antsbees:2') FROM demo.photos;
  """),
}


def _check_arity(name, extra):
    if len(extra) > 1:
        raise TypeError(f"{name} takes (content[, model]); got {1 + len(extra)} arguments")
    return extra[0] if extra else None


def build(catalog) -> dict:
    """Return {sql name: pandas UDF} closing over ``catalog`` (bundle broadcasts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PandasUDFType is needed for the optional argument

        @pandas_udf(RESULT_TYPE, PandasUDFType.SCALAR)
        def classify_image(content, *model):
            return predict.classify(catalog, content, _check_arity("classify_image", model))

        @pandas_udf("string", PandasUDFType.SCALAR)
        def image_label(content, *model):
            return predict.classify(catalog, content, _check_arity("image_label", model))["label"]

    return {"classify_image": classify_image, "image_label": image_label}


def _expression_info(jvm, name):
    doc = DOCS[name]
    return jvm.org.apache.spark.sql.catalyst.expressions.ExpressionInfo(
        f"sqlext.functions.{name}", None, name, doc["usage"], doc["arguments"], doc["examples"],
        "", "", "", "", "python_udf")


def register(spark, catalog) -> None:
    """Register the functions in ``spark`` and in every session created from it later."""
    jvm, jss = spark._jvm, spark._jsparkSession
    registry = jss.sessionState().functionRegistry()
    for name, udf in build(catalog).items():
        spark.udf.register(name, udf)
        ident = jvm.org.apache.spark.sql.catalyst.FunctionIdentifier(name)
        builder = registry.lookupFunctionBuilder(ident).get()
        info = _expression_info(jvm, name)
        registry.registerFunction(ident, info, builder)
        jss.extensions().injectFunction(jvm.scala.Tuple3(ident, info, builder))

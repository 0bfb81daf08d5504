package sqlext;

import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.spark.QueryContext;
import org.apache.spark.sql.AnalysisException;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.GetStructField;
import org.apache.spark.sql.catalyst.expressions.If;
import org.apache.spark.sql.catalyst.expressions.IsNull;
import org.apache.spark.sql.catalyst.expressions.Literal;
import org.apache.spark.sql.execution.python.UserDefinedPythonFunction;
import org.apache.spark.sql.hive.HiveGenericUDF;
import org.apache.spark.sql.hive.HiveShim;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.types.BinaryType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StringType;

import scala.Option;
import scala.collection.JavaConverters;
import scala.collection.Seq;
import scala.runtime.AbstractFunction1;

/**
 * Wraps the builder of a Python UDF {@code f(content, model, on_error)} as the SQL function
 * {@code name(content[, model])}, checked at analysis time:
 * <ul>
 *   <li>one or two arguments, else an AnalysisException with the usage;</li>
 *   <li>a literal model must be a known 'name' or 'name:version', else an AnalysisException that
 *       lists the available models (or, for a refused bundle, says why it was refused);</li>
 *   <li>the session setting {@code sqlext.on_error} ('null' or 'fail') is passed as the third
 *       argument, so workers see the caller's setting;</li>
 *   <li>NULL content gives a NULL result (a NULL struct, not a struct of NULLs);</li>
 *   <li>with a literal model and a tag for it, the call goes through the JVM prediction cache:
 *       {@code fill(tag, classify_keyed(probe(content, tag), model, on_error))}, so a cached image's
 *       bytes never reach the Python worker and each image is hashed once ({@link PredictionCache});</li>
 *   <li>the expansion is wrapped in a {@link FunctionCall}, so an unaliased column is titled
 *       {@code name(content)}.</li>
 * </ul>
 */
public class ImageFunctionBuilder extends AbstractFunction1<Seq<Expression>, Expression> {
    public static final String ON_ERROR = "sqlext.on_error";

    private final String name;
    private final UserDefinedPythonFunction udf;
    private final Set<String> models;
    private final String available;
    private final Map<String, String> refused;
    private UserDefinedPythonFunction classifyUdf;
    private Map<String, String> tags = Collections.emptyMap();

    public ImageFunctionBuilder(String name, UserDefinedPythonFunction udf,
                                String[] knownModels, String available) {
        this(name, udf, knownModels, available, Collections.emptyMap());
    }

    /** {@code refused}: 'name' or 'name:version' -> why that bundle is not served (e.g. a checksum mismatch). */
    public ImageFunctionBuilder(String name, UserDefinedPythonFunction udf,
                                String[] knownModels, String available, Map<String, String> refused) {
        this.name = name;
        this.udf = udf;
        this.models = new HashSet<>(Arrays.asList(knownModels));
        this.available = available;
        this.refused = new HashMap<>(refused);
    }

    /**
     * Route literal-model calls through the JVM prediction cache.  {@code classifyUdf} takes the probe's
     * {@code STRUCT<digest, content>} and returns {@code STRUCT<label, probability, model, digest>}
     * (image_label takes its label); {@code tags}: model spec ('' for the default
     * model, 'name', 'name:version') -> the tag of the bundle it names.
     */
    public ImageFunctionBuilder withCache(UserDefinedPythonFunction classifyUdf, Map<String, String> tags) {
        this.classifyUdf = classifyUdf;
        this.tags = new HashMap<>(tags);
        return this;
    }

    /** An AnalysisException, thrown unchecked (Scala callers do not declare it). */
    static RuntimeException error(String message) {
        return ImageFunctionBuilder.<RuntimeException>sneaky(new AnalysisException(message, Option.empty(),
                Option.empty(), Option.empty(), Option.empty(),
                scala.collection.immutable.Map$.MODULE$.empty(), new QueryContext[0]));
    }

    @SuppressWarnings("unchecked")
    private static <E extends Throwable> RuntimeException sneaky(Throwable e) throws E {
        throw (E) e;
    }

    @Override
    public Expression apply(Seq<Expression> children) {
        List<Expression> args = JavaConverters.seqAsJavaList(children);
        if (args.isEmpty() || args.size() > 2) {
            throw error(name + "(content[, model]) takes 1 or 2 arguments, got " + args.size());
        }
        Expression content = args.get(0);
        Expression model = args.size() == 2 ? args.get(1) : Literal.create(null, DataTypes.StringType);
        String tag = null;  // the bundle's cache tag when the model is known at analysis time
        if (model.foldable()) {
            Object value = model.eval(null);
            String spec = value == null ? null : value.toString().trim();
            tag = tags.get(spec == null ? "" : spec);
            if (spec != null && !models.contains(spec) && refused.containsKey(spec)) {
                throw error("model '" + spec + "' was refused: " + refused.get(spec) + "; available models: "
                        + available);
            }
            if (value != null && !models.contains(spec)) {
                throw error("unknown model '" + value + "'; available models: " + available);
            }
        }
        String onError = SQLConf.get().getConfString(ON_ERROR, "null").trim().toLowerCase();
        if (!onError.equals("null") && !onError.equals("fail")) {
            throw error(ON_ERROR + " must be 'null' or 'fail', got '" + onError + "'");
        }
        Expression onErrorArg = Literal.create(onError, DataTypes.StringType);
        Expression result;
        if (tag == null || classifyUdf == null || !(content.dataType() instanceof BinaryType)) {
            result = udf.builder(seq(content, model, onErrorArg));
        } else {
            Expression tagArg = Literal.create(tag, DataTypes.StringType);
            Expression probe = hive("sqlext_cache_probe", CacheProbeUDF.class, content, tagArg);
            Expression prediction = classifyUdf.builder(seq(probe, model, onErrorArg));
            result = hive("sqlext_cache_fill", CacheFillUDF.class, tagArg, prediction);
            if (udf.dataType() instanceof StringType) {
                result = new GetStructField(result, 0, Option.apply("label"));
            }
        }
        return FunctionCall.of(name, args, new If(new IsNull(content), Literal.create(null, result.dataType()), result));
    }

    private static Seq<Expression> seq(Expression... expressions) {
        return JavaConverters.asScalaBuffer(Arrays.asList(expressions)).toSeq();
    }

    private static Expression hive(String name, Class<?> function, Expression... children) {
        return new HiveGenericUDF(name, new HiveShim.HiveFunctionWrapper(function.getName(), null, null),
                seq(children));
    }
}

package sqlext;

import java.util.Arrays;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.metadata.HiveException;
import org.apache.hadoop.hive.ql.udf.UDFType;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspectorFactory;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.BinaryObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.PrimitiveObjectInspectorFactory;

/**
 * {@code sqlext_cache_probe(content, tag)}: what the Python worker gets for a row,
 * {@code STRUCT<digest: BINARY, content: BINARY>}: the image's content key ({@link PredictionCache#digest})
 * and its bytes, or NULL bytes when {@link PredictionCache} already holds this image's prediction for the
 * model {@code tag} (a string literal).  The worker returns the digest with its prediction, and
 * {@link CacheFillUDF} uses it to store the prediction or to return the cached one, without hashing again.
 * NULL content gives NULL.
 */
@UDFType(deterministic = true, stateful = false)
public class CacheProbeUDF extends CacheUDF {
    private transient BinaryObjectInspector contentInspector;
    private transient String tag;

    @Override
    String name() {
        return "sqlext_cache_probe";
    }

    @Override
    public ObjectInspector initialize(ObjectInspector[] arguments) throws UDFArgumentException {
        if (arguments.length != 2 || !(arguments[0] instanceof BinaryObjectInspector)) {
            throw new UDFArgumentException("sqlext_cache_probe(content BINARY, tag STRING literal)");
        }
        contentInspector = (BinaryObjectInspector) arguments[0];
        tag = tagArgument(arguments[1]);
        return ObjectInspectorFactory.getStandardStructObjectInspector(Arrays.asList("digest", "content"),
                Arrays.asList(PrimitiveObjectInspectorFactory.javaByteArrayObjectInspector,
                        PrimitiveObjectInspectorFactory.javaByteArrayObjectInspector));
    }

    @Override
    public Object evaluate(DeferredObject[] arguments) throws HiveException {
        byte[] content = contentInspector.getPrimitiveJavaObject(arguments[0].get());
        if (content == null) {
            return null;
        }
        byte[] digest = PredictionCache.digest(content);
        boolean cached = PredictionCache.probe(new PredictionCache.Key(digest, tag)) != null;
        return new Object[] {digest, cached ? null : content};
    }
}

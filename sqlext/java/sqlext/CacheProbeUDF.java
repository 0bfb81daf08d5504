package sqlext;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.metadata.HiveException;
import org.apache.hadoop.hive.ql.udf.UDFType;
import org.apache.hadoop.hive.ql.udf.generic.GenericUDF;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.BinaryObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.PrimitiveObjectInspectorFactory;

/**
 * {@code sqlext_cache_probe(content, tag)}: the image bytes to send to the Python worker, or NULL
 * when {@link PredictionCache} already holds this image's prediction for the model {@code tag}
 * (a string literal); {@link CacheFillUDF} then returns the cached prediction for the row.
 */
@UDFType(deterministic = true, stateful = false)
public class CacheProbeUDF extends GenericUDF {
    private transient BinaryObjectInspector contentInspector;
    private transient String tag;

    @Override
    public ObjectInspector initialize(ObjectInspector[] arguments) throws UDFArgumentException {
        if (arguments.length != 2 || !(arguments[0] instanceof BinaryObjectInspector)) {
            throw new UDFArgumentException("sqlext_cache_probe(content BINARY, tag STRING literal)");
        }
        contentInspector = (BinaryObjectInspector) arguments[0];
        tag = PredictionCache.tagArgument(arguments[1], "sqlext_cache_probe");
        return PrimitiveObjectInspectorFactory.javaByteArrayObjectInspector;
    }

    @Override
    public Object evaluate(DeferredObject[] arguments) throws HiveException {
        byte[] content = contentInspector.getPrimitiveJavaObject(arguments[0].get());
        if (content == null) {
            return null;
        }
        return PredictionCache.probe(new PredictionCache.Key(content, tag)) == null ? content : null;
    }

    @Override
    public String getDisplayString(String[] children) {
        return "sqlext_cache_probe(" + String.join(", ", children) + ")";
    }
}

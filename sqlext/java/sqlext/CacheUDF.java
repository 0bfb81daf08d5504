package sqlext;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.udf.generic.GenericUDF;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;

/** What the prediction cache's Hive UDFs ({@link CacheProbeUDF}, {@link CacheFillUDF}) share. */
abstract class CacheUDF extends GenericUDF {
    /** The SQL name, for error messages and plans. */
    abstract String name();

    /** The model tag argument: a non-NULL string literal. */
    String tagArgument(ObjectInspector inspector) throws UDFArgumentException {
        return PredictionCache.tagArgument(inspector, name());
    }

    /**
     * Never folded into a constant at planning time, not even for a literal image: the result depends on
     * the cache when the row is read, and Hive's folded struct would carry Java values under writable
     * inspectors (a ClassCastException when Spark unwraps it).
     */
    @Override
    public ObjectInspector initializeAndFoldConstants(ObjectInspector[] arguments) throws UDFArgumentException {
        return initialize(arguments);
    }

    @Override
    public String getDisplayString(String[] children) {
        return name() + "(" + String.join(", ", children) + ")";
    }
}

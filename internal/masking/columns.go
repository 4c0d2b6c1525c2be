package masking

// How each SQL dialect's column types map to a ColumnInfo: the one mapping
// the engines check masking strategies with, and kubectl lethe scaffold
// suggests them with, so a draft's suggestion is what the store accepts.

// PostgresColumnInfo derives the kind and size of a PostgreSQL column from its base type name
// and type modifier.
func PostgresColumnInfo(baseType string, typmod int32) ColumnInfo {
	switch baseType {
	case "text", "citext", "name":
		return ColumnInfo{Kind: KindText}
	case "varchar", "bpchar":
		info := ColumnInfo{Kind: KindText}
		if typmod >= 4 { // the modifier stores the length plus a 4-byte header
			info.MaxLength = int(typmod - 4)
		}
		return info
	case "int2":
		return ColumnInfo{Kind: KindInteger, IntDigits: 4}
	case "int4":
		return ColumnInfo{Kind: KindInteger, IntDigits: 9}
	case "int8":
		return ColumnInfo{Kind: KindInteger, IntDigits: 18}
	case "numeric":
		info := ColumnInfo{Kind: KindDecimal}
		if typmod >= 4 { // ((precision << 16) | scale) + 4
			precision, scale := (typmod-4)>>16&0xffff, (typmod-4)&0xffff
			info.IntDigits = max(int(precision-scale), 0)
		}
		return info
	case "float4", "float8":
		return ColumnInfo{Kind: KindFloat}
	case "date":
		return ColumnInfo{Kind: KindDate}
	case "timestamp":
		return ColumnInfo{Kind: KindTimestamp}
	case "timestamptz":
		return ColumnInfo{Kind: KindTimestampTZ}
	case "bool":
		return ColumnInfo{Kind: KindBoolean}
	case "uuid":
		return ColumnInfo{Kind: KindUUID}
	case "bytea":
		return ColumnInfo{Kind: KindBytes}
	}
	return ColumnInfo{Kind: KindOther}
}

// MySQLColumnInfo derives the kind and size of a MySQL/MariaDB column from information_schema.
func MySQLColumnInfo(dataType string, maxLength, precision, scale int64) ColumnInfo {
	switch dataType {
	case "char", "varchar", "tinytext":
		return ColumnInfo{Kind: KindText, MaxLength: int(maxLength)}
	case "text", "mediumtext", "longtext", "json":
		return ColumnInfo{Kind: KindText}
	case "tinyint":
		return ColumnInfo{Kind: KindInteger, IntDigits: 2}
	case "smallint":
		return ColumnInfo{Kind: KindInteger, IntDigits: 4}
	case "mediumint":
		return ColumnInfo{Kind: KindInteger, IntDigits: 6}
	case "int", "integer":
		return ColumnInfo{Kind: KindInteger, IntDigits: 9}
	case "bigint":
		return ColumnInfo{Kind: KindInteger, IntDigits: 18}
	case "decimal", "numeric":
		return ColumnInfo{Kind: KindDecimal, IntDigits: max(int(precision-scale), 0)}
	case "float", "double", "real":
		return ColumnInfo{Kind: KindFloat}
	case "date":
		return ColumnInfo{Kind: KindDate}
	case "datetime":
		return ColumnInfo{Kind: KindTimestamp}
	case "timestamp":
		return ColumnInfo{Kind: KindTimestampTZ}
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return ColumnInfo{Kind: KindBytes}
	case "uuid":
		return ColumnInfo{Kind: KindUUID}
	}
	return ColumnInfo{Kind: KindOther} // enum, set, time, year, bit, inet4/6, geometry...
}

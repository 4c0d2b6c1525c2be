# Renders one DataSubjectRequest (kubectl get dsr NAME -o json) as a readable
# receipt: conditions, deadline, digests and, per store and collection, the
# action, the rows and the reason for anything retained. Used by hack/demo.sh.
def cond($t): ((.status.conditions // []) | map(select(.type == $t)) | .[0]) // {};
def pad($n): tostring | if length < $n then . + (" " * ($n - length)) else . end;
def lpad($n): tostring | if length < $n then (" " * ($n - length)) + . else . end;
def epoch: sub("\\.[0-9]+"; "") | fromdateiso8601;

cond("Ready") as $ready
| cond("DeadlineExceeded") as $late
| (if .status.completionTime then
     " in \((.status.completionTime | epoch) - (.metadata.creationTimestamp | epoch))s"
   else "" end) as $took
| "▸ \(.metadata.name): \(.spec.type)\(if .spec.dryRun then " (dry run)" else "" end)"
  + "  Ready=\($ready.status // "?") \($ready.reason // "")",
  "    \($ready.message // "")",
  "    deadline        \(.status.deadline // "-")  DeadlineExceeded=\($late.status // "?") (\($late.reason // "-"))",
  "    completed       \(.status.completionTime // "-")\($took)",
  "    subject digest  \(.status.subjectDigest // "-")",
  "    receipt digest  \(.status.receiptDigest // "-")",
  ( .status.stores // [] | .[]
    | "    store \(.store): \(.phase), \(.attempts // 0) attempt(s)\(if .message then " (" + .message + ")" else "" end)",
      "      \("collection" | pad(17)) \("action" | pad(9)) \("rows" | lpad(4))  reason",
      ( .collections // [] | .[]
        | "      \(.collection | pad(17)) \(.action | pad(9)) \(.rows | lpad(4))  "
          + "\(.reason // "")\(if .retainedUntil then " [until " + .retainedUntil[0:10] + "]" else "" end)" ) ),
  ( if .status.exportSecretRef then "    export          Secret \(.status.exportSecretRef.name)" else empty end )

// The toolwarden policy language. docs/language.md is the specification; this
// grammar is its syntax. C++ is generated from it at build time (never committed)
// and only policy/internal/parser_impl.cc includes the generated headers.
grammar Policy;

file : item* EOF ;

item
  : 'policy' IDENT ';'                              # PolicyItem
  | 'tools' STRING ';'                              # ToolsItem
  | 'trust' target (',' target)* ';'                # TrustItem
  | 'let' IDENT '=' expr ';'                        # LetItem
  | 'default' fallback ';'                          # DefaultItem
  | policyRule ';'                                        # RuleItem
  ;

policyRule
  : effect=('allow' | 'forbid') target (',' target)*
    ('when' expr)?
    ('priority' INT)?
    ('fallback' fallback)?
    ('update' '{' (policyRule ';')* '}')?
  ;

target : IDENT | STRING | '*' ;

fallback : kind=('block' | 'ask' | 'terminate') STRING? ;

// Alternatives are listed from the tightest binding to the loosest.
expr
  : postfix                                                          # PostfixExpr
  | '-' expr                                                         # NegExpr
  | expr op=('*' | '/' | '%') expr                                   # MulExpr
  | expr op=('+' | '-') expr                                         # AddExpr
  | expr op=('==' | '!=' | '<' | '<=' | '>' | '>=') expr             # CompareExpr
  | expr negated='not'? 'in' expr                                    # InExpr
  | expr op=('matches' | 'contains' | 'startswith' | 'endswith') expr # StringExpr
  | expr 'from' source=IDENT                                         # FromExpr
  | 'not' expr                                                       # NotExpr
  | expr 'and' expr                                                  # AndExpr
  | expr 'or' expr                                                   # OrExpr
  ;

postfix : primary selector* ;

selector
  : '.' IDENT                                       # FieldSelector
  | '[' expr ']'                                    # IndexSelector
  ;

primary
  : 'null'                                          # NullLiteral
  | 'true'                                          # TrueLiteral
  | 'false'                                         # FalseLiteral
  | NUMBER                                          # NumberLiteral
  | INT                                             # IntLiteral
  | STRING                                          # StringLiteral
  | RAW_STRING                                      # RawStringLiteral
  | '[' (expr (',' expr)* ','?)? ']'                # ListLiteral
  | IDENT '(' (expr (',' expr)*)? ')'               # CallExpr
  | IDENT                                           # NameExpr
  | '(' expr ')'                                    # ParenExpr
  ;

INT        : [0-9]+ ;
NUMBER     : [0-9]+ ('.' [0-9]+)? ([eE] [+-]? [0-9]+)? ;
IDENT      : [A-Za-z_] [A-Za-z0-9_]* ;
RAW_STRING : 'r"' ~'"'* '"' ;
STRING     : '"' ( ESC | ~["\\\u0000-\u001F] )* '"' ;
fragment ESC : '\\' ( ["\\/bfnrt] | 'u' HEX HEX HEX HEX ) ;
fragment HEX : [0-9a-fA-F] ;
COMMENT    : '#' ~[\r\n]* -> channel(HIDDEN) ;
WS         : [ \t\r\n]+ -> skip ;
ERROR_CHAR : . ;

// An `include word anywhere is refused: it is read on the raw bytes.
// `include "/etc/passwd"
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
endmodule
